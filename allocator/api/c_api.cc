// The C ABI of allocator/api/vramcache.h over the registry. Every entry point catches every
// failure, records it as the calling thread's last error, and leaves the allocator unchanged.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/api/config_parser.h"
#include "allocator/api/registry.h"
#include "allocator/api/snapshot_json.h"
#include "allocator/api/snapshot_structs.h"
#include "allocator/api/vramcache.h"

namespace vramcache {
namespace {

thread_local std::string last_error;
thread_local int last_error_kind = VRAMCACHE_OK;
thread_local std::string json_buffer;

int KindOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return VRAMCACHE_OK;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
      return VRAMCACHE_ERROR_INVALID;
    case absl::StatusCode::kResourceExhausted:
      return VRAMCACHE_ERROR_OUT_OF_MEMORY;
    case absl::StatusCode::kDataLoss:
      return VRAMCACHE_ERROR_CORRUPTION;
    default:
      return VRAMCACHE_ERROR_OTHER;
  }
}

int Fail(const absl::Status& status) {
  last_error = std::string(status.message());
  last_error_kind = KindOf(status);
  return -1;
}

int Succeed() {
  last_error.clear();
  last_error_kind = VRAMCACHE_OK;
  return 0;
}

StreamHandle ToStream(void* stream) { return reinterpret_cast<StreamHandle>(stream); }

absl::StatusOr<void*> AllocateOn(std::size_t size, int device, void* stream) {
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return allocator.status();
  return (*allocator)->Allocate(size, ToStream(stream));
}

// The allocator that owns `ptr` (a pointer is live on at most one device).
std::optional<AllocatorRef> OwnerOf(void* ptr) {
  for (AllocatorRef& allocator : Registry::Global().Existing()) {
    if (allocator->AllocationSize(ptr).ok()) return allocator;
  }
  return std::nullopt;
}

void CopyStat(const Stat& from, vramcache_stat& to) {
  to = {from.current, from.peak, from.allocated, from.freed()};
}

void FillStats(const DeviceStats& s, vramcache_stats& out) {
  out.version = VRAMCACHE_STATS_VERSION;
#define VRAMCACHE_COPY_POOL(name) \
  for (int p = 0; p < kNumPoolStats; ++p) CopyStat(s.name.by_pool[p], out.name[p]);
  VRAMCACHE_POOL_STATS(VRAMCACHE_COPY_POOL)
#undef VRAMCACHE_COPY_POOL
#define VRAMCACHE_COPY_SINGLE(name) CopyStat(s.name, out.name);
  VRAMCACHE_SINGLE_STATS(VRAMCACHE_COPY_SINGLE)
#undef VRAMCACHE_COPY_SINGLE
#define VRAMCACHE_COPY_COUNTER(name) out.name = s.name;
  VRAMCACHE_EVENT_COUNTERS(VRAMCACHE_COPY_COUNTER)
  VRAMCACHE_GAUGES(VRAMCACHE_COPY_COUNTER)
#undef VRAMCACHE_COPY_COUNTER
}

}  // namespace
}  // namespace vramcache

using namespace vramcache;  // NOLINT: the C entry points below are thin wrappers

extern "C" {

void* vramcache_malloc(size_t size, int device, void* stream) {
  absl::StatusOr<void*> ptr = AllocateOn(size, device, stream);
  if (!ptr.ok()) {
    Fail(ptr.status());
    // PyTorch's pluggable path never checks for NULL; an exception becomes a Python error.
    throw std::runtime_error(last_error);
  }
  Succeed();
  return *ptr;
}

void* vramcache_try_malloc(size_t size, int device, void* stream) {
  absl::StatusOr<void*> ptr = AllocateOn(size, device, stream);
  if (!ptr.ok()) {
    Fail(ptr.status());
    return nullptr;
  }
  Succeed();
  return *ptr;
}

void vramcache_free(void* ptr, size_t /*size*/, int device, void* /*stream*/) {
  if (ptr == nullptr) {
    Succeed();
    return;
  }
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) {
    Fail(allocator.status());
    return;
  }
  absl::Status status = (*allocator)->Free(ptr);
  if (absl::IsDataLoss(status)) {
    // A debug mode found corruption; the memory was freed. PyTorch's free cannot return an
    // error, so the report goes where the user will see it as well as to last_error.
    std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
    Fail(status);
    return;
  }
  if (!status.ok()) {
    std::optional<AllocatorRef> owner = OwnerOf(ptr);
    if (owner.has_value() && owner->get() != allocator->get()) {
      status = absl::InvalidArgumentError(absl::StrFormat(
          "vramcache: free of %p on device %d, but it was allocated on device %d; nothing freed",
          ptr, device, owner->device()->Capabilities().ordinal));
    } else if (!owner.has_value() && absl::IsInvalidArgument(status) &&
               Registry::Global().HasShutDown()) {
      // The likeliest unknown pointer after a shutdown is one from before it.
      status = absl::InvalidArgumentError(
          absl::StrCat(status.message(),
                       " (vramcache_shutdown() has run in this process: memory allocated before "
                       "it went back to the device then and cannot be freed now)"));
    }
    Fail(status);
    return;
  }
  Succeed();
}

const char* vramcache_last_error(void) { return last_error.c_str(); }

int vramcache_last_error_kind(void) { return last_error_kind; }

int vramcache_record_stream(void* ptr, void* stream) {
  std::optional<AllocatorRef> owner = OwnerOf(ptr);
  if (!owner.has_value()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrFormat("vramcache: record_stream of %p: not a live allocation", ptr)));
  }
  absl::Status status = (*owner)->RecordStream(ptr, ToStream(stream));
  return status.ok() ? Succeed() : Fail(status);
}

int vramcache_stream_destroyed(void* stream) {
  absl::Status status = absl::OkStatus();
  for (const AllocatorRef& allocator : Registry::Global().Existing()) {
    status.Update(allocator->StreamDestroyed(ToStream(stream)));
  }
  return status.ok() ? Succeed() : Fail(status);
}

int vramcache_check_canaries(int device) {
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return Fail(allocator.status());
  absl::Status status = (*allocator)->CheckCanaries();
  return status.ok() ? Succeed() : Fail(status);
}

int vramcache_enable_peer_access(int accessing_device, int owning_device) {
  // Both must exist: the owner's allocator would otherwise grant access to a device that is not
  // there without complaint.
  absl::StatusOr<AllocatorRef> accessing = Registry::Global().Get(accessing_device);
  if (!accessing.ok()) return Fail(accessing.status());
  absl::StatusOr<AllocatorRef> owner = Registry::Global().Get(owning_device);
  if (!owner.ok()) return Fail(owner.status());
  if (accessing_device == owning_device) {
    return Fail(absl::InvalidArgumentError(absl::StrFormat(
        "vramcache_enable_peer_access(accessing_device %d, owning_device %d): a device always "
        "accesses its own memory; name two different devices",
        accessing_device, owning_device)));
  }
  absl::Status status = (*owner)->EnablePeerAccess(accessing_device);
  return status.ok() ? Succeed() : Fail(status);
}

int vramcache_empty_cache(void) {
  absl::Status status = absl::OkStatus();
  for (const AllocatorRef& allocator : Registry::Global().Existing()) {
    status.Update(allocator->EmptyCache());
  }
  return status.ok() ? Succeed() : Fail(status);
}

int vramcache_set_memory_fraction(double fraction, int device) {
  // PyTorch's range: 0.0 is allowed and lets nothing be allocated.
  if (!(fraction >= 0.0 && fraction <= 1.0)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrFormat("vramcache: memory fraction %g is outside [0, 1]", fraction)));
  }
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return Fail(allocator.status());
  // The core keeps a configured byte budget as the ceiling, lets nothing fit at 0, and gives
  // back cached memory above the new cap at once.
  absl::StatusOr<std::size_t> over = (*allocator)->SetMemoryFraction(fraction);
  if (!over.ok()) return Fail(over.status());
  return Succeed();
}

int vramcache_set_allocator_settings(const char* settings) {
  if (settings == nullptr) {
    return Fail(absl::InvalidArgumentError("vramcache_set_allocator_settings: settings is NULL"));
  }
  absl::Status status = Registry::Global().ApplyAllocatorSettings(settings);
  return status.ok() ? Succeed() : Fail(status);
}

int vramcache_get_stats(int device, vramcache_stats* out) {
  if (out == nullptr) return Fail(absl::InvalidArgumentError("vramcache_get_stats: out is NULL"));
  if (out->struct_size < 2 * sizeof(uint64_t)) {
    return Fail(absl::InvalidArgumentError(absl::StrFormat(
        "vramcache_get_stats: struct_size %d is too small; set it to sizeof(vramcache_stats)",
        out->struct_size)));
  }
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return Fail(allocator.status());
  vramcache_stats full{};
  full.struct_size = sizeof(vramcache_stats);
  FillStats((*allocator)->GetStats(), full);
  // Older callers get the prefix they know; newer ones see struct_size shrink to ours.
  const std::size_t n = std::min<std::size_t>(out->struct_size, sizeof(vramcache_stats));
  const std::uint64_t caller_size = out->struct_size;
  std::memcpy(out, &full, n);
  out->struct_size = std::min<std::uint64_t>(caller_size, sizeof(vramcache_stats));
  return Succeed();
}

const char* vramcache_stats_json(int device) {
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) {
    Fail(allocator.status());
    return nullptr;
  }
  json_buffer = (*allocator)->GetStats().ToJson();
  Succeed();
  return json_buffer.c_str();
}

int vramcache_reset_peak_stats(int device) {
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return Fail(allocator.status());
  (*allocator)->ResetPeakStats();
  return Succeed();
}

int vramcache_reset_accumulated_stats(int device) {
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return Fail(allocator.status());
  (*allocator)->ResetAccumulatedStats();
  return Succeed();
}

const char* vramcache_snapshot_json(void) {
  // The references keep the allocators alive while the snapshot reads them.
  const std::vector<AllocatorRef> existing = Registry::Global().Existing();
  std::vector<CachingAllocator*> allocators;
  for (const AllocatorRef& allocator : existing) allocators.push_back(allocator.get());
  json_buffer = SnapshotJson(allocators);
  Succeed();
  return json_buffer.c_str();
}

const vramcache_snapshot* vramcache_snapshot_take(int include_traces) {
  // The references keep the allocators alive while the snapshot reads them.
  const std::vector<AllocatorRef> existing = Registry::Global().Existing();
  std::vector<CachingAllocator*> allocators;
  for (const AllocatorRef& allocator : existing) allocators.push_back(allocator.get());
  const vramcache_snapshot* snapshot = HandOut(TakeSnapshot(allocators, include_traces != 0));
  Succeed();
  return snapshot;
}

int vramcache_snapshot_release(const vramcache_snapshot* snapshot) {
  if (!TakeBack(snapshot)) {
    return Fail(absl::InvalidArgumentError(absl::StrFormat(
        "vramcache_snapshot_release(%p): not a snapshot from vramcache_snapshot_take, or "
        "released already",
        static_cast<const void*>(snapshot))));
  }
  return Succeed();
}

const char* vramcache_last_oom_json(int device) {
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) {
    Fail(allocator.status());
    return nullptr;
  }
  std::optional<OomReport> report = (*allocator)->LastOom();
  json_buffer = report.has_value() ? report->ToJson() : "null";
  Succeed();
  return json_buffer.c_str();
}

int vramcache_device_count(void) {
  absl::StatusOr<int> count = Registry::Global().DeviceCount();
  if (!count.ok()) return Fail(count.status());
  Succeed();
  return *count;
}

int vramcache_begin_allocate_to_pool(int device, uint64_t pool, vramcache_stream_filter filter,
                                     void* ctx) {
  if (pool == 0) {
    return Fail(absl::InvalidArgumentError("vramcache: pool 0 is the shared pool, not private"));
  }
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return Fail(allocator.status());
  std::function<bool(StreamHandle)> predicate;
  if (filter != nullptr) {
    predicate = [filter, ctx](StreamHandle s) {
      return filter(reinterpret_cast<void*>(s), ctx) != 0;
    };
  }
  (*allocator)->BeginAllocateToPool(pool, std::move(predicate));
  return Succeed();
}

int vramcache_end_allocate_to_pool(int device, uint64_t pool) {
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return Fail(allocator.status());
  absl::Status status = (*allocator)->EndAllocateToPool(pool);
  return status.ok() ? Succeed() : Fail(status);
}

int vramcache_release_pool(int device, uint64_t pool) {
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return Fail(allocator.status());
  absl::Status status = (*allocator)->ReleasePool(pool);
  return status.ok() ? Succeed() : Fail(status);
}

int vramcache_attach_oom_observer(int device, vramcache_oom_observer observer, void* ctx) {
  if (observer == nullptr) {
    return Fail(absl::InvalidArgumentError("vramcache_attach_oom_observer: observer is NULL"));
  }
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return Fail(allocator.status());
  (*allocator)
      ->AttachOomObserver([observer, ctx](int d, std::size_t requested, std::size_t allocated,
                                          std::size_t limit, std::size_t device_free) {
        observer(d, requested, allocated, limit, device_free, ctx);
      });
  return Succeed();
}

double vramcache_get_memory_fraction(int device) {
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) {
    Fail(allocator.status());
    return 0.0;
  }
  const double total = static_cast<double>((*allocator)->device()->Capabilities().total_bytes);
  Succeed();
  return total > 0 ? static_cast<double>((*allocator)->Budget()) / total : 0.0;
}

int vramcache_cache_info(int device, size_t* largest_free_block) {
  if (largest_free_block == nullptr) {
    return Fail(absl::InvalidArgumentError("vramcache_cache_info: largest_free_block is NULL"));
  }
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) return Fail(allocator.status());
  *largest_free_block = (*allocator)->LargestFreeBlock();
  return Succeed();
}

void* vramcache_base_allocation(void* ptr, size_t* size) {
  for (const AllocatorRef& allocator : Registry::Global().Existing()) {
    absl::StatusOr<std::pair<DevicePtr, std::size_t>> base = allocator->BaseAllocation(ptr);
    if (base.ok()) {
      if (size != nullptr) *size = base->second;
      Succeed();
      return reinterpret_cast<void*>(base->first);
    }
  }
  Fail(absl::NotFoundError(
      absl::StrFormat("vramcache: %p is not inside memory vramcache holds", ptr)));
  return nullptr;
}

size_t vramcache_device_total_bytes(int device) {
  absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
  if (!allocator.ok()) {
    Fail(allocator.status());
    return 0;
  }
  Succeed();
  return (*allocator)->device()->Capabilities().total_bytes;
}

int vramcache_configure(const char* conf) {
  if (conf == nullptr) return Fail(absl::InvalidArgumentError("vramcache_configure: conf is NULL"));
  std::string set_aside;
  absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironmentWith(conf, &set_aside);
  if (!config.ok()) return Fail(config.status());
  absl::Status status = Registry::Global().Configure(*config);
  if (!status.ok()) return Fail(status);
  if (!set_aside.empty()) {
    // The process goes on with the explicit configuration; the user should still fix the
    // variable, which every other process started the same way will read.
    std::fprintf(stderr,
                 "vramcache: the environment's configuration is invalid and was replaced by "
                 "the one given to vramcache_configure: %s\n",
                 set_aside.c_str());
  }
  return Succeed();
}

int vramcache_configuration_status(void) {
  absl::Status status = Registry::Global().CheckConfiguration();
  return status.ok() ? Succeed() : Fail(status);
}

int vramcache_shutdown(void) {
  absl::Status status = Registry::Global().Shutdown();
  return status.ok() ? Succeed() : Fail(status);
}

}  // extern "C"
