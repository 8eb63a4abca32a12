// The shared traces, found by listing the trace directory and parsed with the project's RMM CSV
// reader, each at most once per process.
#include "bench/micro/trace_library.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "allocator/base/mutex.h"
#include "allocator/trace/trace_reader.h"

namespace vramcache::bench {

namespace {

struct Library {
  Mutex mu;
  std::string directory ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, std::unique_ptr<Trace>> parsed ABSL_GUARDED_BY(mu);
};

Library& TheLibrary() {
  static Library* const library = new Library();  // shared by every benchmark until exit
  return *library;
}

std::filesystem::path PathOf(const std::string& directory, const std::string& name) {
  return std::filesystem::path(directory) / (name + ".csv");
}

}  // namespace

void SetTraceDirectory(std::string directory) {
  Library& library = TheLibrary();
  MutexLock lock(&library.mu);
  library.directory = std::move(directory);
  library.parsed.clear();
}

std::string TraceDirectory() {
  Library& library = TheLibrary();
  MutexLock lock(&library.mu);
  return library.directory;
}

std::vector<std::string> ListTraceNames() {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(TraceDirectory(), error)) {
    if (entry.is_regular_file() && entry.path().extension() == ".csv") {
      names.push_back(entry.path().stem().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<const Trace*> LoadTrace(const std::string& name) {
  Library& library = TheLibrary();
  MutexLock lock(&library.mu);
  if (auto it = library.parsed.find(name); it != library.parsed.end()) return it->second.get();
  const std::filesystem::path path = PathOf(library.directory, name);
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrFormat(
        "no trace named \"%s\": %s is not a file (set --trace_dir)", name, path.string()));
  }
  absl::StatusOr<Trace> trace = ReadRmmCsvFile(path.string());
  if (!trace.ok()) return trace.status();
  auto owned = std::make_unique<Trace>(*std::move(trace));
  const Trace* result = owned.get();
  library.parsed.emplace(name, std::move(owned));
  return result;
}

}  // namespace vramcache::bench
