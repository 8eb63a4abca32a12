// VramcacheAllocator's methods: each is one or two calls into vramcache's C ABI plus the
// translation PyTorch expects (its stats struct, its snapshot struct, c10::OutOfMemoryError,
// its pool ids). What vramcache cannot do fails with a c10::Error that says so and why.
#include "vramcache_torch_allocator.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string_view>

#include "snapshot_from_c.h"
#include "vramcache.h"

namespace vramcache::torch_adapter {
namespace {

using c10::CachingDeviceAllocator::DeviceStats;
using c10::CachingDeviceAllocator::Stat;
using c10::CachingDeviceAllocator::StatArray;

constexpr std::uint64_t kHandleSideBit = std::uint64_t{1} << 63;

std::string LastError(const char* what) {
  const char* why = vramcache_last_error();
  if (why != nullptr && why[0] != '\0') return why;
  return std::string("vramcache: ") + what + " failed";
}

bool LastCallFailed() {
  const char* why = vramcache_last_error();
  return why != nullptr && why[0] != '\0';
}

void Check(int rc, const char* what) { TORCH_CHECK(rc >= 0, LastError(what)); }

// vramcache's out-of-memory report opens as PyTorch's does ("CUDA out of memory. Tried to
// allocate ..."); every other failure (a bad device, an absurd size) is a plain error.
bool IsOutOfMemory(std::string_view why) { return why.find("out of memory") != why.npos; }

void CopyStat(const vramcache_stat& from, Stat& to) {
  to.current = from.current;
  to.peak = from.peak;
  to.allocated = from.allocated;
  to.freed = from.freed;
}

// vramcache and PyTorch order the pool split the same way: {all, small_pool, large_pool}.
void CopyStatArray(const vramcache_stat (&from)[3], StatArray& to) {
  static_assert(static_cast<int>(c10::CachingAllocator::StatType::AGGREGATE) == 0 &&
                static_cast<int>(c10::CachingAllocator::StatType::SMALL_POOL) == 1 &&
                static_cast<int>(c10::CachingAllocator::StatType::LARGE_POOL) == 2);
  for (int pool = 0; pool < 3; ++pool) CopyStat(from[pool], to[pool]);
}

vramcache_stats ReadStats(int device) {
  vramcache_stats stats;
  std::memset(&stats, 0, sizeof(stats));
  stats.struct_size = sizeof(stats);
  Check(vramcache_get_stats(device, &stats), "vramcache_get_stats");
  return stats;
}

// What getCheckpointState hands out: which pool it names. vramcache cannot rebuild a pool's
// blocks at given addresses, so setCheckpointPoolState refuses it (see there).
struct PoolCheckpoint final : alloc::AllocatorState {
  PoolCheckpoint(c10::DeviceIndex device, c10::MempoolId_t pool) : device(device), pool(pool) {}
  c10::DeviceIndex device;
  c10::MempoolId_t pool;
};

}  // namespace

std::uint64_t FoldPoolId(c10::MempoolId_t id) {
  TORCH_CHECK(id.first != 0 || id.second != 0,
              "vramcache: pool {0, 0} is the shared pool, not a private one");
  TORCH_CHECK(id.first == 0 || id.second == 0, "vramcache: pool {", id.first, ", ", id.second,
              "} sets both sides; PyTorch's pool ids set one (a capture id or a handle)");
  const std::uint64_t side = id.first != 0 ? id.first : id.second;
  TORCH_CHECK(side < kHandleSideBit, "vramcache: pool id ", side, " is too large (at most 2^63-1)");
  return id.first != 0 ? side : (side | kHandleSideBit);
}

c10::MempoolId_t UnfoldPoolId(std::uint64_t pool) {
  if (pool == 0 || pool == ~std::uint64_t{0}) return {0, 0};
  const std::uint64_t side = pool & ~kHandleSideBit;
  return (pool & kHandleSideBit) != 0 ? c10::MempoolId_t{0, side} : c10::MempoolId_t{side, 0};
}

VramcacheAllocator* VramcacheAllocator::Instance() {
  static VramcacheAllocator* instance = new VramcacheAllocator();  // never destroyed: see header
  return instance;
}

void VramcacheAllocator::Configure(const std::string& conf) {
  std::lock_guard<std::mutex> lock(mu_);
  Check(vramcache_configure(conf.c_str()), "vramcache_configure");
  conf_ = conf;
}

// ---- allocation ----

void* VramcacheAllocator::AllocateOn(size_t nbytes, int device, cudaStream_t stream) {
  if (nbytes == 0) return nullptr;
  void* ptr = vramcache_try_malloc(nbytes, device, stream);
  if (ptr != nullptr) return ptr;
  const std::string why = LastError("vramcache_try_malloc");
  // Python sees torch.OutOfMemoryError, which is what PyTorch's own code catches to retry
  // with less (cuDNN workspaces, autotuning); everything else is a RuntimeError.
  TORCH_CHECK_WITH(OutOfMemoryError, !IsOutOfMemory(why), why);
  TORCH_CHECK(false, why);
}

c10::DataPtr VramcacheAllocator::allocate(size_t nbytes) {
  const c10::DeviceIndex device = c10::cuda::current_device();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  void* ptr = AllocateOn(nbytes, device, stream);
  return {ptr, ptr, &RawDelete, c10::Device(c10::DeviceType::CUDA, device)};
}

c10::DeleterFnPtr VramcacheAllocator::raw_deleter() const { return &RawDelete; }

void VramcacheAllocator::RawDelete(void* ptr) { Instance()->Free(ptr); }

void VramcacheAllocator::Free(void* ptr) {
  if (ptr == nullptr) return;
  // vramcache_free needs the owning device. Tensors are nearly always freed with their device
  // current; otherwise the others are tried (a wrong device fails and changes nothing).
  int count = device_count_.load(std::memory_order_relaxed);
  if (count <= 0) count = vramcache_device_count();
  int first = 0;
  if (count > 1) {
    c10::DeviceIndex current = 0;
    if (c10::cuda::GetDevice(&current) == cudaSuccess) first = current;
  }
  vramcache_free(ptr, 0, first, nullptr);
  if (!LastCallFailed()) return;
  // A debug mode's report (a damaged guard band): the memory was freed and the report printed
  // to stderr; a deleter must not throw, and no other device has the block.
  if (vramcache_last_error_kind() == VRAMCACHE_ERROR_CORRUPTION) return;
  const std::string why = LastError("vramcache_free");
  for (int device = 0; device < count; ++device) {
    if (device == first) continue;
    vramcache_free(ptr, 0, device, nullptr);
    if (!LastCallFailed()) return;
  }
  TORCH_CHECK(false, why);
}

void* VramcacheAllocator::raw_alloc(size_t nbytes) {
  const c10::DeviceIndex device = c10::cuda::current_device();
  return AllocateOn(nbytes, device, c10::cuda::getCurrentCUDAStream(device).stream());
}

void* VramcacheAllocator::raw_alloc_with_stream(size_t nbytes, cudaStream_t stream) {
  return AllocateOn(nbytes, c10::cuda::current_device(), stream);
}

void VramcacheAllocator::raw_delete(void* ptr) { Free(ptr); }

void VramcacheAllocator::copy_data(void* dest, const void* src, std::size_t count) const {
  C10_CUDA_CHECK(cudaMemcpy(dest, src, count, cudaMemcpyDeviceToDevice));
}

void VramcacheAllocator::recordStream(const c10::DataPtr& ptr, c10::cuda::CUDAStream stream) {
  // As PyTorch's allocator: memory it did not hand out (from_blob, IPC) is not its business.
  if (ptr.get() == nullptr || ptr.get_deleter() != &RawDelete) return;
  Check(vramcache_record_stream(ptr.get(), stream.stream()), "vramcache_record_stream");
}

// ---- lifecycle ----

void VramcacheAllocator::init(int device_count) {
  // vramcache opens its devices on first use; touching it here would freeze its configuration
  // before recordHistory or a late configure could still change it.
  device_count_.store(device_count, std::memory_order_relaxed);
  initialized_.store(true, std::memory_order_release);
}

bool VramcacheAllocator::initialized() { return initialized_.load(std::memory_order_acquire); }

void VramcacheAllocator::enable(bool value) {
  TORCH_CHECK(value,
              "vramcache: caching cannot be turned off (enable(false)); to run without a cache, "
              "do not install vramcache");
}

bool VramcacheAllocator::isEnabled() const { return true; }

std::string VramcacheAllocator::name() { return "vramcache"; }

// ---- cache and budget ----

void VramcacheAllocator::emptyCache(c10::MempoolId_t /*mempool_id*/) {
  // vramcache releases every releasable segment at once: the shared pool's and those of
  // private pools already released, so a pool id narrows nothing.
  Check(vramcache_empty_cache(), "vramcache_empty_cache");
}

double VramcacheAllocator::getMemoryFraction(c10::DeviceIndex device) {
  const double fraction = vramcache_get_memory_fraction(device);
  TORCH_CHECK(!LastCallFailed(), LastError("vramcache_get_memory_fraction"));
  return fraction > 0 ? fraction : 1.0;  // no cap: the whole device, as PyTorch reports it
}

void VramcacheAllocator::setMemoryFraction(double fraction, c10::DeviceIndex device) {
  Check(vramcache_set_memory_fraction(fraction, device), "vramcache_set_memory_fraction");
}

void VramcacheAllocator::cacheInfo(c10::DeviceIndex device, size_t* largest_block) {
  size_t cached = 0;
  Check(vramcache_cache_info(device, &cached), "vramcache_cache_info");
  if (*largest_block == 0) {
    // As PyTorch's allocator: a caller with no guess (cuDNN sizing its workspace) starts from
    // what the device could still give, here also bounded by the budget's headroom.
    size_t free_bytes = 0, total_bytes = 0;
    {
      c10::cuda::CUDAGuard guard(device);
      C10_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    }
    const vramcache_stats stats = ReadStats(device);
    if (stats.budget_bytes > 0) {
      const std::int64_t headroom =
          std::max<std::int64_t>(0, stats.budget_bytes - stats.reserved_bytes[0].current);
      free_bytes = std::min(free_bytes, static_cast<size_t>(headroom));
    }
    *largest_block = free_bytes;
  }
  *largest_block = std::max(*largest_block, cached);
}

void* VramcacheAllocator::getBaseAllocation(void* ptr, size_t* size) {
  void* base = vramcache_base_allocation(ptr, size);
  TORCH_CHECK(base != nullptr, LastError("vramcache_base_allocation"));
  return base;
}

std::vector<alloc::StreamSegmentSize> VramcacheAllocator::getExpandableSegmentSizes(
    c10::DeviceIndex /*device*/) {
  return {};  // vramcache never makes PyTorch-style expandable segments
}

// ---- statistics ----

DeviceStats VramcacheAllocator::getDeviceStats(c10::DeviceIndex device) {
  const vramcache_stats s = ReadStats(device);
  DeviceStats out;
  CopyStatArray(s.allocation, out.allocation);
  CopyStatArray(s.segment, out.segment);
  CopyStatArray(s.active, out.active);
  CopyStatArray(s.inactive_split, out.inactive_split);
  CopyStatArray(s.allocated_bytes, out.allocated_bytes);
  CopyStatArray(s.reserved_bytes, out.reserved_bytes);
  CopyStatArray(s.active_bytes, out.active_bytes);
  CopyStatArray(s.inactive_split_bytes, out.inactive_split_bytes);
  CopyStatArray(s.requested_bytes, out.requested_bytes);
  CopyStat(s.oversize_allocations, out.oversize_allocations);
  CopyStat(s.oversize_segments, out.oversize_segments);
  out.num_alloc_retries = s.num_alloc_retries;
  out.num_ooms = s.num_ooms;
  out.num_sync_all_streams = s.num_sync_all_streams;
  out.num_device_alloc = s.num_device_alloc;
  out.num_device_free = s.num_device_free;
  out.max_split_size = s.max_split_size;
  return out;
}

void VramcacheAllocator::resetAccumulatedStats(c10::DeviceIndex device) {
  Check(vramcache_reset_accumulated_stats(device), "vramcache_reset_accumulated_stats");
}

void VramcacheAllocator::resetPeakStats(c10::DeviceIndex device) {
  Check(vramcache_reset_peak_stats(device), "vramcache_reset_peak_stats");
}

// ---- snapshot and history ----

alloc::SnapshotInfo VramcacheAllocator::snapshot(c10::MempoolId_t mempool_id, bool include_traces) {
  alloc::SnapshotInfo info =
      SnapshotFromC(*TakenSnapshot(include_traces), include_traces, DeviceCount());
  if (mempool_id.first != 0 || mempool_id.second != 0) {
    std::vector<c10::CachingDeviceAllocator::SegmentInfo> kept;
    for (auto& segment : info.segments) {
      if (segment.owner_private_pool_id == mempool_id) kept.push_back(std::move(segment));
    }
    info.segments = std::move(kept);
  }
  info.config_metadata.expandable_segments = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    info.config_metadata.last_allocator_settings = conf_;
  }
  vramcache_stats stats;
  std::memset(&stats, 0, sizeof(stats));
  stats.struct_size = sizeof(stats);
  if (vramcache_get_stats(0, &stats) == 0) {
    info.config_metadata.max_split_size = static_cast<size_t>(stats.max_split_size);
  }
  return info;
}

bool VramcacheAllocator::HistoryNonEmpty() {
  return TakenSnapshot(/*include_traces=*/true)->trace_count > 0;
}

int VramcacheAllocator::DeviceCount() {
  const int count = vramcache_device_count();
  Check(count, "vramcache_device_count");
  return count;
}

bool VramcacheAllocator::isHistoryEnabled() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (history_configured_.has_value()) return *history_configured_;
  }
  return HistoryNonEmpty();
}

void VramcacheAllocator::recordHistory(bool enabled, alloc::CreateContextFn /*context_recorder*/,
                                       size_t alloc_trace_max_entries,
                                       alloc::RecordContext /*when*/, bool clear_history,
                                       const std::vector<std::string>& skip_actions) {
  TORCH_CHECK(skip_actions.empty(),
              "vramcache: recordHistory cannot skip actions; its trace keeps every alloc, free "
              "and segment event");
  std::lock_guard<std::mutex> lock(mu_);
  // vramcache_configure replaces the whole configuration, so Install()'s is repeated first.
  std::string conf = conf_.empty() ? "" : conf_ + ",";
  if (enabled) {
    const size_t capacity = std::max<size_t>(1, alloc_trace_max_entries);
    conf += "record_history:true,history_capacity:" + std::to_string(capacity);
  } else {
    conf += "record_history:false";
  }
  if (vramcache_configure(conf.c_str()) == 0) {
    history_configured_ = enabled;
    return;
  }
  // Once vramcache has served a request its configuration is fixed: the call stands only when
  // it asks for what is already the case.
  const std::string why = LastError("vramcache_configure");
  const bool recording = history_configured_.value_or(HistoryNonEmpty());
  TORCH_CHECK(recording == enabled && !(clear_history && recording), "vramcache: cannot ",
              clear_history && recording ? "clear" : (enabled ? "start" : "stop"),
              " recording the memory history now (", why,
              "). vramcache records history only as configured before its first use: put "
              "record_history:true in VRAMCACHE_CONF, or pass it to vramcache.install(conf=...) "
              "or vramcache::torch::Install(...). Stack frames are never recorded.");
}

void VramcacheAllocator::attachAllocatorTraceTracker(alloc::AllocatorTraceTracker /*tracker*/) {
  TORCH_CHECK(false,
              "vramcache: attachAllocatorTraceTracker is not supported (vramcache does not call "
              "back on each allocation event). PyTorch uses it for NCCL buffer registration "
              "(TORCH_NCCL_USE_TENSOR_REGISTER_ALLOCATOR_HOOK=1); leave that off with vramcache");
}

#if VRAMCACHE_TORCH_AT_LEAST(2, 12)
void VramcacheAllocator::attachOomRejectionObserver(alloc::OomRejectionObserver /*observer*/) {
  // PyTorch calls these observers when its throw_on_cudamalloc_oom policy turns a request down
  // before trying the device. vramcache has no such policy: every out-of-memory it reports is a
  // real one and reaches attachOutOfMemoryObserver's observers, so this one is never called.
}
#endif

// ---- out of memory ----

void VramcacheAllocator::OnOutOfMemory(int device, size_t requested, size_t /*allocated*/,
                                       size_t limit, size_t device_free, void* ctx) {
  auto* self = static_cast<VramcacheAllocator*>(ctx);
  std::vector<alloc::OutOfMemoryObserver> observers;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    observers = self->oom_observers_;
  }
  // PyTorch's observers get (device, bytes requested, the limit (budget or device total),
  // bytes free on the device), as its own allocator calls them.
  for (const alloc::OutOfMemoryObserver& observer : observers) {
    try {
      observer(device, requested, limit, device_free);
    } catch (const std::exception& e) {
      // Nothing may unwind into vramcache's C code; the allocation's own error follows.
      TORCH_WARN("vramcache: an out-of-memory observer raised: ", e.what());
    }
  }
}

void VramcacheAllocator::attachOutOfMemoryObserver(alloc::OutOfMemoryObserver observer) {
  std::lock_guard<std::mutex> lock(mu_);
  const int count = vramcache_device_count();
  Check(count, "vramcache_device_count");
  for (int device = 0; device < count; ++device) {
    if (oom_hooked_devices_.count(device) != 0) continue;
    Check(vramcache_attach_oom_observer(device, &OnOutOfMemory, this),
          "vramcache_attach_oom_observer");
    oom_hooked_devices_.insert(device);
  }
  oom_observers_.push_back(std::move(observer));
}

// ---- private pools (CUDA graphs, torch.cuda.MemPool, torch.compile's graph trees) ----

int VramcacheAllocator::CallFilter(void* stream, void* ctx) {
  try {
    return static_cast<PoolFilter*>(ctx)->filter(static_cast<cudaStream_t>(stream)) ? 1 : 0;
  } catch (const std::exception& e) {
    TORCH_WARN("vramcache: a private pool's stream filter raised: ", e.what());
    return 0;
  }
}

int VramcacheAllocator::NeverInPool(void* /*stream*/, void* /*ctx*/) { return 0; }

void VramcacheAllocator::beginAllocateToPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id,
                                             std::function<bool(cudaStream_t)> filter) {
  const std::uint64_t pool = FoldPoolId(mempool_id);
  auto holder = std::make_unique<PoolFilter>();
  holder->filter = std::move(filter);
  std::lock_guard<std::mutex> lock(mu_);
  Check(vramcache_begin_allocate_to_pool(device, pool, holder->filter ? &CallFilter : nullptr,
                                         holder.get()),
        "vramcache_begin_allocate_to_pool");
  const PoolKey key{device, pool};
  filters_[key].push_back(std::move(holder));
  ++pool_uses_[key];
}

void VramcacheAllocator::endAllocateToPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id) {
  const std::uint64_t pool = FoldPoolId(mempool_id);
  std::lock_guard<std::mutex> lock(mu_);
  Check(vramcache_end_allocate_to_pool(device, pool), "vramcache_end_allocate_to_pool");
  // vramcache ends the oldest capture into `pool`, whose filter is the oldest kept here; once
  // it has returned, vramcache no longer calls that filter.
  auto it = filters_.find({device, pool});
  if (it == filters_.end()) return;
  it->second.pop_front();
  if (it->second.empty()) filters_.erase(it);
}

void VramcacheAllocator::releasePool(c10::DeviceIndex device, c10::MempoolId_t mempool_id) {
  const std::uint64_t pool = FoldPoolId(mempool_id);
  std::lock_guard<std::mutex> lock(mu_);
  Check(vramcache_release_pool(device, pool), "vramcache_release_pool");
  auto it = pool_uses_.find({device, pool});
  if (it != pool_uses_.end() && --it->second <= 0) pool_uses_.erase(it);
}

int VramcacheAllocator::getPoolUseCount(c10::DeviceIndex device, c10::MempoolId_t mempool_id) {
  const std::uint64_t pool = FoldPoolId(mempool_id);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pool_uses_.find({device, pool});
  return it == pool_uses_.end() ? 0 : it->second;
}

void VramcacheAllocator::createOrIncrefPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id,
                                            std::shared_ptr<alloc::CUDAAllocator> allocator) {
  TORCH_CHECK(allocator == nullptr || allocator.get() == this,
              "vramcache: a MemPool with its own allocator ('", allocator ? allocator->name() : "",
              "') is not supported; vramcache serves every pool itself");
  const std::uint64_t pool = FoldPoolId(mempool_id);
  std::lock_guard<std::mutex> lock(mu_);
  const PoolKey key{device, pool};
  // vramcache counts a use per begin; a begin whose filter takes no stream, ended at once, adds
  // the use and nothing else. End removes the pool's oldest capture, so no capture into it may
  // be running (PyTorch creates pools with fresh ids, before any capture into them).
  TORCH_CHECK(filters_.count(key) == 0, "vramcache: cannot add a use to pool {", mempool_id.first,
              ", ", mempool_id.second, "} while a capture allocates from it");
  Check(vramcache_begin_allocate_to_pool(device, pool, &NeverInPool, nullptr),
        "vramcache_begin_allocate_to_pool");
  Check(vramcache_end_allocate_to_pool(device, pool), "vramcache_end_allocate_to_pool");
  ++pool_uses_[key];
}

void VramcacheAllocator::setUseOnOOM(c10::DeviceIndex /*device*/, c10::MempoolId_t mempool_id,
                                     bool use_on_oom) {
  // Off is what vramcache always does (MemPool's destructor turns it off).
  TORCH_CHECK(!use_on_oom,
              "vramcache: a private pool cannot serve other requests when memory "
              "runs out (MemPool(use_on_oom=True), pool {",
              mempool_id.first, ", ", mempool_id.second, "})");
}

void VramcacheAllocator::setNoSplit(c10::DeviceIndex /*device*/, c10::MempoolId_t mempool_id) {
  TORCH_CHECK(false,
              "vramcache: splitting cannot be turned off for one pool (MemPool(no_split="
              "True), pool {",
              mempool_id.first, ", ", mempool_id.second,
              "}); max_split_size_mb "
              "in the configuration limits splitting for every pool");
}

bool VramcacheAllocator::checkPoolLiveAllocations(
    c10::DeviceIndex device, c10::MempoolId_t mempool_id,
    const std::unordered_set<void*>& expected_live_allocations) {
  const std::uint64_t pool = FoldPoolId(mempool_id);  // the same checks as every pool call
  // As PyTorch's allocator: true when the pool's live blocks are exactly the expected ones.
  // vramcache's snapshot names every block's pool, so the adapter keeps no map of its own.
  TakenSnapshot taken(/*include_traces=*/false);
  std::size_t live = 0;
  for (std::size_t i = 0; i < taken->segment_count; ++i) {
    const vramcache_segment_info& segment = taken->segments[i];
    if (segment.device != device) continue;
    for (std::size_t b = segment.first_block; b < segment.first_block + segment.block_count; ++b) {
      const vramcache_block_info& block = taken->blocks[b];
      if (block.pool != pool || block.state != VRAMCACHE_BLOCK_ALLOCATED) continue;
      void* address = reinterpret_cast<void*>(static_cast<std::uintptr_t>(block.address));
      if (expected_live_allocations.count(address) == 0) return false;
      ++live;
    }
  }
  return live == expected_live_allocations.size();
}

// ---- annotations and user metadata (kept here: vramcache's trace has no field for them) ----

void VramcacheAllocator::recordAnnotation(
    const std::vector<std::pair<std::string, std::string>>& /*md*/) {
  // PyTorch adds these to snapshot()'s external_annotations only while it records history with
  // stack frames; vramcache records no frames, so there is nothing to attach them to.
}

void VramcacheAllocator::pushCompileContext(std::string& md) {
  std::lock_guard<std::mutex> lock(mu_);
  compile_contexts_.push_back(md);
}

void VramcacheAllocator::popCompileContext() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!compile_contexts_.empty()) compile_contexts_.pop_back();
}

void VramcacheAllocator::setUserMetadata(const std::string& metadata) {
  std::lock_guard<std::mutex> lock(mu_);
  user_metadata_ = metadata;
}

std::string VramcacheAllocator::getUserMetadata() {
  std::lock_guard<std::mutex> lock(mu_);
  return user_metadata_;
}

std::shared_ptr<alloc::AllocatorState> VramcacheAllocator::getCheckpointState(
    c10::DeviceIndex device, c10::MempoolId_t id) {
  FoldPoolId(id);  // the same checks as every pool call
  return std::make_shared<PoolCheckpoint>(device, id);
}

alloc::CheckpointDelta VramcacheAllocator::setCheckpointPoolState(
    c10::DeviceIndex device, std::shared_ptr<alloc::AllocatorState> /*state*/) {
  TORCH_CHECK(false, "vramcache: cannot restore a private pool to a checkpoint (device ",
              static_cast<int>(device),
              "): it cannot re-create blocks at given addresses. torch.compile(mode="
              "\"reduce-overhead\") needs this only to record a new branch of its CUDA graph "
              "tree (inputs or control flow changing between calls); there, use "
              "torch._inductor.config.triton.cudagraph_trees = False or a mode without CUDA "
              "graphs");
}

// ---- peers and IPC ----

void VramcacheAllocator::enablePeerAccess(c10::DeviceIndex dev, c10::DeviceIndex dev_to_access) {
  c10::cuda::CUDAGuard guard(dev);
  const cudaError_t err = cudaDeviceEnablePeerAccess(dev_to_access, 0);
  if (err == cudaErrorPeerAccessAlreadyEnabled) {
    (void)cudaGetLastError();  // already on: clear the sticky error and carry on
  } else {
    C10_CUDA_CHECK(err);
  }
  // cudaDeviceEnablePeerAccess does not cover virtual-memory mappings: dev_to_access's
  // allocator grants them to dev, the device that will read and write them.
  TORCH_CHECK(
      vramcache_enable_peer_access(/*accessing_device=*/dev, /*owning_device=*/dev_to_access) == 0,
      vramcache_last_error());
}

cudaError_t VramcacheAllocator::memcpyAsync(void* dst, int dst_device, const void* src,
                                            int src_device, size_t count, cudaStream_t stream,
                                            bool p2p_enabled) {
  if (p2p_enabled || dst_device == src_device) {
    return cudaMemcpyAsync(dst, src, count, cudaMemcpyDeviceToDevice, stream);
  }
  // Without peer access only the peer copy is right for every kind of device memory.
  return cudaMemcpyPeerAsync(dst, dst_device, src, src_device, count, stream);
}

alloc::ShareableHandle VramcacheAllocator::shareIpcHandle(void* ptr) {
  TORCH_CHECK(false,
              "vramcache: CUDA memory cannot be shared with other processes (IPC handle "
              "for ",
              ptr,
              "); torch.multiprocessing needs PyTorch's own allocator to send CUDA "
              "tensors, or send them through the CPU");
}

std::shared_ptr<void> VramcacheAllocator::getIpcDevPtr(std::string /*handle*/) {
  TORCH_CHECK(false,
              "vramcache: CUDA memory from other processes (IPC handles) cannot be opened "
              "with vramcache installed; receive such tensors through the CPU instead");
}

}  // namespace vramcache::torch_adapter
