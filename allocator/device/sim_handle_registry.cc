// The process-wide handle counters and registries behind hazard H4.
#include "allocator/device/sim_handle_registry.h"

#include <atomic>

#include "absl/container/flat_hash_map.h"
#include "allocator/base/mutex.h"

namespace vramcache {
namespace {

// Created streams: far from the small values tests use for implicit streams, and shaped like
// the pointers cudaStream_t values are. Events: far from both, and from small made-up values
// tests pass as unknown events.
constexpr StreamHandle kFirstCreatedStream = 0x5eed0000;
constexpr StreamHandle kCreatedStreamStride = 0x10;
constexpr EventHandle kFirstEvent = EventHandle{0xe7e0} << 32;

struct Registry {
  Mutex mu;
  absl::flat_hash_map<StreamHandle, SimHandleOwner> streams ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<EventHandle, SimHandleOwner> events ABSL_GUARDED_BY(mu);
};

Registry& TheRegistry() {
  static Registry* const registry = new Registry();  // never destroyed: devices may outlive main
  return *registry;
}

}  // namespace

StreamHandle NextSimStreamHandle() {
  static std::atomic<StreamHandle> next{kFirstCreatedStream};
  return next.fetch_add(kCreatedStreamStride, std::memory_order_relaxed);
}

EventHandle NextSimEventHandle() {
  static std::atomic<EventHandle> next{kFirstEvent};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void RegisterSimStream(StreamHandle stream, const void* device, int ordinal) {
  Registry& r = TheRegistry();
  MutexLock lock(&r.mu);
  r.streams[stream] = SimHandleOwner{device, ordinal, true};
}

void MarkSimStreamDestroyed(StreamHandle stream) {
  Registry& r = TheRegistry();
  MutexLock lock(&r.mu);
  if (auto it = r.streams.find(stream); it != r.streams.end()) it->second.live = false;
}

void ForgetSimStream(StreamHandle stream) {
  Registry& r = TheRegistry();
  MutexLock lock(&r.mu);
  r.streams.erase(stream);
}

std::optional<SimHandleOwner> LookupSimStream(StreamHandle stream) {
  Registry& r = TheRegistry();
  MutexLock lock(&r.mu);
  auto it = r.streams.find(stream);
  if (it == r.streams.end()) return std::nullopt;
  return it->second;
}

void RegisterSimEvent(EventHandle event, const void* device, int ordinal) {
  Registry& r = TheRegistry();
  MutexLock lock(&r.mu);
  r.events[event] = SimHandleOwner{device, ordinal, true};
}

void ForgetSimEvent(EventHandle event) {
  Registry& r = TheRegistry();
  MutexLock lock(&r.mu);
  r.events.erase(event);
}

std::optional<SimHandleOwner> LookupSimEvent(EventHandle event) {
  Registry& r = TheRegistry();
  MutexLock lock(&r.mu);
  auto it = r.events.find(event);
  if (it == r.events.end()) return std::nullopt;
  return it->second;
}

}  // namespace vramcache
