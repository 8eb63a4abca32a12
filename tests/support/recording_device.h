// A Device decorator for tests: forwards every call to the device it wraps (a ForwardingDevice)
// and writes each one, with its arguments and result, to a DeviceCallLog. Addresses, chunks, events
// and streams are named by the order they first appear (m0 for the first Malloc, r0+2097152 for an
// offset into the first reservation, c0, e0, s0), so the same decisions give the same text on every
// run and machine although the wrapped device's raw values differ. The golden test uses it to prove
// a refactor of the core makes exactly the device calls it made before.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "allocator/device/device.h"
#include "tests/support/device_call_log.h"
#include "tests/support/forwarding_device.h"

namespace vramcache {

class RecordingDevice final : public ForwardingDevice {
 public:
  // Wraps `inner`, which must outlive this device.
  RecordingDevice(Device* inner, DeviceCallLog* log);
  // Wraps and owns `inner`.
  RecordingDevice(std::unique_ptr<Device> inner, DeviceCallLog* log);

  // Capabilities() is not logged: a constant the allocator reads whenever it needs a size, not
  // a device call; ForwardingDevice forwards it.
  absl::StatusOr<DeviceMemInfo> MemInfo() override;
  absl::StatusOr<DevicePtr> Malloc(std::size_t bytes) override;
  absl::Status Free(DevicePtr ptr) override;
  absl::StatusOr<DevicePtr> ReserveAddress(std::size_t bytes) override;
  absl::Status ReleaseAddress(DevicePtr base, std::size_t bytes) override;
  absl::StatusOr<ChunkHandle> CreateChunk(std::size_t bytes) override;
  absl::Status ReleaseChunk(ChunkHandle chunk) override;
  absl::Status Map(DevicePtr va, std::size_t bytes, ChunkHandle chunk) override;
  absl::Status Unmap(DevicePtr va, std::size_t bytes) override;
  absl::Status GrantPeerAccess(DevicePtr va, std::size_t bytes, int peer_ordinal) override;
  absl::StatusOr<EventHandle> CreateEvent() override;
  absl::Status DestroyEvent(EventHandle event) override;
  absl::Status RecordEvent(EventHandle event, StreamHandle stream) override;
  absl::StatusOr<bool> QueryEvent(EventHandle event) override;
  absl::Status SynchronizeEvent(EventHandle event) override;
  absl::Status StreamWaitEvent(StreamHandle stream, EventHandle event) override;
  absl::Status SynchronizeDevice() override;
  absl::StatusOr<bool> IsCapturing(StreamHandle stream) override;
  absl::StatusOr<int> StreamOrdinal(StreamHandle stream) override;
  CaptureMode ExchangeCaptureMode(CaptureMode mode) override;
  absl::Status Fill(const FillRequest& request, StreamHandle stream) override;
  absl::StatusOr<std::vector<std::optional<PatternMismatch>>> VerifyPatterns(
      const std::vector<PatternCheck>& checks, StreamHandle stream) override;

 private:
  // A range the device handed out (Malloc'ed block or reserved address space), by its base.
  struct Range {
    std::string name;
    std::size_t bytes = 0;
  };

  // "m0", "r1+4096", or the raw value in hex when no live range holds it (a bug to see).
  std::string AddressName(DevicePtr ptr) const;
  // Names `value` in `names` by order of first appearance, with `prefix`.
  static std::string HandleName(std::unordered_map<std::uintptr_t, std::string>& names,
                                std::size_t& next, const char* prefix, std::uintptr_t value);
  std::string ChunkName(ChunkHandle chunk);
  std::string EventName(EventHandle event);
  std::string StreamName(StreamHandle stream);
  void Log(std::string line);
  // Malloc and ReserveAddress (mutex_ held): names the range the device handed out (`prefix`
  // and its order) and returns " -> NAME", or the error suffix when it failed.
  std::string NewRange(const absl::StatusOr<DevicePtr>& base, std::size_t bytes, const char* prefix,
                       std::size_t& next);
  // Free and ReleaseAddress: the range's name, taken before the call that may end it (locks)...
  std::string NameBeforeRelease(DevicePtr base);
  // ...and after it (mutex_ held): forgets the range if it went back; the error suffix.
  std::string EndRange(DevicePtr base, const absl::Status& status);
  // " -> error CODE" for a failed call (the message may hold raw addresses), else "".
  static std::string ErrorSuffix(const absl::Status& status);

  std::unique_ptr<Device> owned_;
  DeviceCallLog* log_;
  std::mutex mutex_;  // the allocator may call from several threads
  std::map<DevicePtr, Range> ranges_;
  std::size_t next_malloc_ = 0;
  std::size_t next_reservation_ = 0;
  std::unordered_map<std::uintptr_t, std::string> chunks_;
  std::size_t next_chunk_ = 0;
  std::unordered_map<std::uintptr_t, std::string> events_;
  std::size_t next_event_ = 0;
  std::unordered_map<std::uintptr_t, std::string> streams_;
  std::size_t next_stream_ = 0;
};

}  // namespace vramcache
