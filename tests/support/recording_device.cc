// RecordingDevice: forwards each call, then logs it with deterministic names for what the
// device handed out (see recording_device.h).
#include "tests/support/recording_device.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vramcache {
namespace {

const char* CaptureModeName(Device::CaptureMode mode) {
  switch (mode) {
    case Device::CaptureMode::kGlobal:
      return "global";
    case Device::CaptureMode::kThreadLocal:
      return "thread_local";
    case Device::CaptureMode::kRelaxed:
      break;
  }
  return "relaxed";
}

}  // namespace

RecordingDevice::RecordingDevice(Device* inner, DeviceCallLog* log)
    : ForwardingDevice(inner), log_(log) {}

RecordingDevice::RecordingDevice(std::unique_ptr<Device> inner, DeviceCallLog* log)
    : ForwardingDevice(inner.get()), owned_(std::move(inner)), log_(log) {}

std::string RecordingDevice::AddressName(DevicePtr ptr) const {
  auto after = ranges_.upper_bound(ptr);
  if (after != ranges_.begin()) {
    const auto& [base, range] = *std::prev(after);
    if (ptr < base + range.bytes) {
      return ptr == base ? range.name : absl::StrCat(range.name, "+", ptr - base);
    }
  }
  return absl::StrFormat("unknown:%#x", ptr);
}

std::string RecordingDevice::HandleName(std::unordered_map<std::uintptr_t, std::string>& names,
                                        std::size_t& next, const char* prefix,
                                        std::uintptr_t value) {
  auto [it, inserted] = names.try_emplace(value);
  if (inserted) it->second = absl::StrCat(prefix, next++);
  return it->second;
}

std::string RecordingDevice::ChunkName(ChunkHandle chunk) {
  return HandleName(chunks_, next_chunk_, "c", static_cast<std::uintptr_t>(chunk));
}

std::string RecordingDevice::EventName(EventHandle event) {
  return HandleName(events_, next_event_, "e", event);
}

std::string RecordingDevice::StreamName(StreamHandle stream) {
  // Small values are chosen by the test (0, the default stream, and fixed handles) and mean the
  // same on every run; others are the device's and are named by first appearance.
  constexpr StreamHandle kFixedStreamLimit = 1024;
  if (stream < kFixedStreamLimit) return absl::StrCat(stream);
  return HandleName(streams_, next_stream_, "s", stream);
}

void RecordingDevice::Log(std::string line) { log_->Add(line); }

std::string RecordingDevice::NewRange(const absl::StatusOr<DevicePtr>& base, std::size_t bytes,
                                      const char* prefix, std::size_t& next) {
  if (!base.ok()) return ErrorSuffix(base.status());
  Range& range = ranges_[*base];
  range.name = absl::StrCat(prefix, next++);
  range.bytes = bytes;
  return absl::StrCat(" -> ", range.name);
}

std::string RecordingDevice::NameBeforeRelease(DevicePtr base) {
  std::lock_guard<std::mutex> lock(mutex_);
  return AddressName(base);
}

std::string RecordingDevice::EndRange(DevicePtr base, const absl::Status& status) {
  if (status.ok()) ranges_.erase(base);
  return ErrorSuffix(status);
}

std::string RecordingDevice::ErrorSuffix(const absl::Status& status) {
  if (status.ok()) return "";
  return absl::StrCat(" -> error ", absl::StatusCodeToString(status.code()));
}

absl::StatusOr<DeviceMemInfo> RecordingDevice::MemInfo() {
  absl::StatusOr<DeviceMemInfo> info = ForwardingDevice::MemInfo();
  std::lock_guard<std::mutex> lock(mutex_);
  Log(info.ok()
          ? absl::StrFormat("MemInfo -> free %d total %d", info->free_bytes, info->total_bytes)
          : absl::StrCat("MemInfo", ErrorSuffix(info.status())));
  return info;
}

absl::StatusOr<DevicePtr> RecordingDevice::Malloc(std::size_t bytes) {
  absl::StatusOr<DevicePtr> ptr = ForwardingDevice::Malloc(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("Malloc ", bytes, NewRange(ptr, bytes, "m", next_malloc_)));
  return ptr;
}

absl::Status RecordingDevice::Free(DevicePtr ptr) {
  const std::string name = NameBeforeRelease(ptr);
  absl::Status status = ForwardingDevice::Free(ptr);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("Free ", name, EndRange(ptr, status)));
  return status;
}

absl::StatusOr<DevicePtr> RecordingDevice::ReserveAddress(std::size_t bytes) {
  absl::StatusOr<DevicePtr> base = ForwardingDevice::ReserveAddress(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("ReserveAddress ", bytes, NewRange(base, bytes, "r", next_reservation_)));
  return base;
}

absl::Status RecordingDevice::ReleaseAddress(DevicePtr base, std::size_t bytes) {
  const std::string name = NameBeforeRelease(base);
  absl::Status status = ForwardingDevice::ReleaseAddress(base, bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("ReleaseAddress ", name, " ", bytes, EndRange(base, status)));
  return status;
}

absl::StatusOr<ChunkHandle> RecordingDevice::CreateChunk(std::size_t bytes) {
  absl::StatusOr<ChunkHandle> chunk = ForwardingDevice::CreateChunk(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!chunk.ok()) {
    Log(absl::StrCat("CreateChunk ", bytes, ErrorSuffix(chunk.status())));
    return chunk;
  }
  chunks_.erase(*chunk);  // a released handle's value may come back: a new name
  Log(absl::StrCat("CreateChunk ", bytes, " -> ", ChunkName(*chunk)));
  return chunk;
}

absl::Status RecordingDevice::ReleaseChunk(ChunkHandle chunk) {
  absl::Status status = ForwardingDevice::ReleaseChunk(chunk);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("ReleaseChunk ", ChunkName(chunk), ErrorSuffix(status)));
  return status;
}

absl::Status RecordingDevice::Map(DevicePtr va, std::size_t bytes, ChunkHandle chunk) {
  absl::Status status = ForwardingDevice::Map(va, bytes, chunk);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("Map ", AddressName(va), " ", bytes, " ", ChunkName(chunk),
                   ErrorSuffix(status)));
  return status;
}

absl::Status RecordingDevice::Unmap(DevicePtr va, std::size_t bytes) {
  absl::Status status = ForwardingDevice::Unmap(va, bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("Unmap ", AddressName(va), " ", bytes, ErrorSuffix(status)));
  return status;
}

absl::Status RecordingDevice::GrantPeerAccess(DevicePtr va, std::size_t bytes, int peer_ordinal) {
  absl::Status status = ForwardingDevice::GrantPeerAccess(va, bytes, peer_ordinal);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("GrantPeerAccess ", AddressName(va), " ", bytes, " ", peer_ordinal,
                   ErrorSuffix(status)));
  return status;
}

absl::StatusOr<EventHandle> RecordingDevice::CreateEvent() {
  absl::StatusOr<EventHandle> event = ForwardingDevice::CreateEvent();
  std::lock_guard<std::mutex> lock(mutex_);
  if (!event.ok()) {
    Log(absl::StrCat("CreateEvent", ErrorSuffix(event.status())));
    return event;
  }
  events_.erase(*event);  // a destroyed event's value may come back: a new name
  Log(absl::StrCat("CreateEvent -> ", EventName(*event)));
  return event;
}

absl::Status RecordingDevice::DestroyEvent(EventHandle event) {
  absl::Status status = ForwardingDevice::DestroyEvent(event);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("DestroyEvent ", EventName(event), ErrorSuffix(status)));
  return status;
}

absl::Status RecordingDevice::RecordEvent(EventHandle event, StreamHandle stream) {
  absl::Status status = ForwardingDevice::RecordEvent(event, stream);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("RecordEvent ", EventName(event), " ", StreamName(stream), ErrorSuffix(status)));
  return status;
}

absl::StatusOr<bool> RecordingDevice::QueryEvent(EventHandle event) {
  absl::StatusOr<bool> done = ForwardingDevice::QueryEvent(event);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("QueryEvent ", EventName(event),
                   done.ok() ? (*done ? " -> true" : " -> false") : ErrorSuffix(done.status())));
  return done;
}

absl::Status RecordingDevice::SynchronizeEvent(EventHandle event) {
  absl::Status status = ForwardingDevice::SynchronizeEvent(event);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("SynchronizeEvent ", EventName(event), ErrorSuffix(status)));
  return status;
}

absl::Status RecordingDevice::StreamWaitEvent(StreamHandle stream, EventHandle event) {
  absl::Status status = ForwardingDevice::StreamWaitEvent(stream, event);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("StreamWaitEvent ", StreamName(stream), " ", EventName(event),
                   ErrorSuffix(status)));
  return status;
}

absl::Status RecordingDevice::SynchronizeDevice() {
  absl::Status status = ForwardingDevice::SynchronizeDevice();
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("SynchronizeDevice", ErrorSuffix(status)));
  return status;
}

absl::StatusOr<bool> RecordingDevice::IsCapturing(StreamHandle stream) {
  absl::StatusOr<bool> capturing = ForwardingDevice::IsCapturing(stream);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat(
      "IsCapturing ", StreamName(stream),
      capturing.ok() ? (*capturing ? " -> true" : " -> false") : ErrorSuffix(capturing.status())));
  return capturing;
}

absl::StatusOr<int> RecordingDevice::StreamOrdinal(StreamHandle stream) {
  absl::StatusOr<int> ordinal = ForwardingDevice::StreamOrdinal(stream);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("StreamOrdinal ", StreamName(stream),
                   ordinal.ok() ? absl::StrCat(" -> ", *ordinal) : ErrorSuffix(ordinal.status())));
  return ordinal;
}

Device::CaptureMode RecordingDevice::ExchangeCaptureMode(CaptureMode mode) {
  const CaptureMode previous = ForwardingDevice::ExchangeCaptureMode(mode);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrCat("ExchangeCaptureMode ", CaptureModeName(mode), " -> ",
                   CaptureModeName(previous)));
  return previous;
}

absl::Status RecordingDevice::Fill(const FillRequest& request, StreamHandle stream) {
  absl::Status status = ForwardingDevice::Fill(request, stream);
  std::lock_guard<std::mutex> lock(mutex_);
  Log(absl::StrFormat("Fill %s %d %#x %s%s", AddressName(request.ptr), request.bytes,
                      request.pattern, StreamName(stream), ErrorSuffix(status)));
  return status;
}

absl::StatusOr<std::vector<std::optional<PatternMismatch>>> RecordingDevice::VerifyPatterns(
    const std::vector<PatternCheck>& checks, StreamHandle stream) {
  absl::StatusOr<std::vector<std::optional<PatternMismatch>>> result =
      ForwardingDevice::VerifyPatterns(checks, stream);
  std::lock_guard<std::mutex> lock(mutex_);
  std::string line = absl::StrCat("VerifyPatterns ", StreamName(stream));
  for (const PatternCheck& check : checks) {
    absl::StrAppendFormat(&line, " %s:%d:%#x", AddressName(check.ptr), check.bytes, check.pattern);
  }
  if (result.ok()) {
    std::size_t mismatches = 0;
    for (const std::optional<PatternMismatch>& mismatch : *result) {
      if (mismatch.has_value()) ++mismatches;
    }
    absl::StrAppend(&line, " -> ", mismatches, " mismatched");
  } else {
    line += ErrorSuffix(result.status());
  }
  Log(std::move(line));
  return result;
}

}  // namespace vramcache
