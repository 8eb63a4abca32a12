// The RMM CSV writer.
#include "allocator/trace/trace_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/trace/trace_reader.h"

namespace vramcache {

std::string FormatRmmCsv(const Trace& trace) {
  std::string out;
  out.reserve(48 * (trace.events.size() + 1));
  absl::StrAppend(&out, kRmmCsvHeader, "\n");
  for (const TraceEvent& event : trace.events) {
    const std::int64_t micros = event.time_us % 1'000'000;
    const std::int64_t total_seconds = event.time_us / 1'000'000;
    absl::StrAppendFormat(&out, "%u,%02d:%02d:%02d.%06d,%s,0x%x,%u,%u\n",
                          trace.thread_values[event.thread_id], total_seconds / 3600,
                          total_seconds / 60 % 60, total_seconds % 60, micros,
                          event.kind == TraceEventKind::kAllocate ? "allocate" : "free",
                          trace.pointer_values[event.pointer_id], event.size, event.stream);
  }
  return out;
}

absl::Status WriteRmmCsvFile(const Trace& trace, const std::string& path) {
  const std::string text = FormatRmmCsv(trace);
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    const int error_number = errno;
    return absl::Status(absl::ErrnoToStatusCode(error_number),
                        absl::StrCat(path, ": cannot create: ", std::strerror(error_number)));
  }
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  const int write_errno = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    const int error_number = !written ? write_errno : errno;
    return absl::Status(absl::ErrnoToStatusCode(error_number),
                        absl::StrCat(path, ": cannot write: ", std::strerror(error_number)));
  }
  return absl::OkStatus();
}

}  // namespace vramcache
