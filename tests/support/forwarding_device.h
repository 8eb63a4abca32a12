// A Device decorator that forwards every call to the device it wraps. Test devices that change
// one or two calls (run a hook after a synchronization, say) derive from it and override only
// those, instead of writing out the whole interface again.
#pragma once

#include <optional>
#include <vector>

#include "allocator/device/device.h"

namespace vramcache {

class ForwardingDevice : public Device {
 public:
  // Wraps `inner`, which must outlive this device.
  explicit ForwardingDevice(Device* inner) : inner_(inner) {}

  const DeviceCapabilities& Capabilities() const override { return inner_->Capabilities(); }
  absl::StatusOr<DeviceMemInfo> MemInfo() override { return inner_->MemInfo(); }
  absl::StatusOr<DevicePtr> Malloc(std::size_t bytes) override { return inner_->Malloc(bytes); }
  absl::Status Free(DevicePtr ptr) override { return inner_->Free(ptr); }
  absl::StatusOr<DevicePtr> ReserveAddress(std::size_t bytes) override {
    return inner_->ReserveAddress(bytes);
  }
  absl::Status ReleaseAddress(DevicePtr base, std::size_t bytes) override {
    return inner_->ReleaseAddress(base, bytes);
  }
  absl::StatusOr<ChunkHandle> CreateChunk(std::size_t bytes) override {
    return inner_->CreateChunk(bytes);
  }
  absl::Status ReleaseChunk(ChunkHandle chunk) override { return inner_->ReleaseChunk(chunk); }
  absl::Status Map(DevicePtr va, std::size_t bytes, ChunkHandle chunk) override {
    return inner_->Map(va, bytes, chunk);
  }
  absl::Status Unmap(DevicePtr va, std::size_t bytes) override { return inner_->Unmap(va, bytes); }
  absl::Status GrantPeerAccess(DevicePtr va, std::size_t bytes, int peer_ordinal) override {
    return inner_->GrantPeerAccess(va, bytes, peer_ordinal);
  }
  absl::StatusOr<EventHandle> CreateEvent() override { return inner_->CreateEvent(); }
  absl::Status DestroyEvent(EventHandle event) override { return inner_->DestroyEvent(event); }
  absl::Status RecordEvent(EventHandle event, StreamHandle stream) override {
    return inner_->RecordEvent(event, stream);
  }
  absl::StatusOr<bool> QueryEvent(EventHandle event) override { return inner_->QueryEvent(event); }
  absl::Status SynchronizeEvent(EventHandle event) override {
    return inner_->SynchronizeEvent(event);
  }
  absl::Status StreamWaitEvent(StreamHandle stream, EventHandle event) override {
    return inner_->StreamWaitEvent(stream, event);
  }
  absl::Status SynchronizeDevice() override { return inner_->SynchronizeDevice(); }
  absl::StatusOr<bool> IsCapturing(StreamHandle stream) override {
    return inner_->IsCapturing(stream);
  }
  absl::StatusOr<int> StreamOrdinal(StreamHandle stream) override {
    return inner_->StreamOrdinal(stream);
  }
  CaptureMode ExchangeCaptureMode(CaptureMode mode) override {
    return inner_->ExchangeCaptureMode(mode);
  }
  absl::Status Fill(const FillRequest& request, StreamHandle stream) override {
    return inner_->Fill(request, stream);
  }
  absl::StatusOr<std::vector<std::optional<PatternMismatch>>> VerifyPatterns(
      const std::vector<PatternCheck>& checks, StreamHandle stream) override {
    return inner_->VerifyPatterns(checks, stream);
  }

 private:
  Device* const inner_;
};

}  // namespace vramcache
