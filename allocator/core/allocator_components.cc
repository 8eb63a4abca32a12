// Builds one device's allocator components and wires each to those it works on
// (allocator_components.h).
#include "allocator/core/allocator_components.h"

#include <memory>

namespace vramcache {

bool UsesVirtualMemory(const AllocatorConfig& config, const DeviceCapabilities& caps) {
  if (!caps.vmm_supported || !config.caching) return false;
  return config.vmm != VmmMode::kOff;
}

namespace {

std::unique_ptr<Backing> MakeBacking(bool virtual_memory, Device* device,
                                     const AllocatorConfig& config, AllocatorComponents& c) {
  if (virtual_memory) {
    return std::make_unique<VmmBacking>(device, config, &c.ledger, c.limits.budget());
  }
  return std::make_unique<SegmentBacking>(&c.stats, &c.ledger, &c.limits, &c.heap.small_free(),
                                          &c.heap.large_free());
}

}  // namespace

AllocatorComponents::AllocatorComponents(Device* device, const AllocatorConfig& config,
                                         Clock* clock, DebugGuard* guard)
    : virtual_memory(UsesVirtualMemory(config, device->Capabilities())),
      settings(RuntimeSettings::Of(config)),
      ledger(&stats, config.max_split_size),
      heap(&ledger, virtual_memory),
      placement(&heap, &settings, virtual_memory),
      limits(config, device->Capabilities().total_bytes),
      reuse_cache(EffectiveReuseCacheBytes(config, virtual_memory)),
      graph_pools(device),
      history(config, clock),
      frees(device, &heap, &ledger, [this](Block* block) { lifecycle.CompletePendingFree(block); }),
      stream_uses(device->Capabilities().ordinal, &frees),
      backing(MakeBacking(virtual_memory, device, config, *this)),
      vmm(virtual_memory ? static_cast<VmmBacking*>(backing.get()) : nullptr),
      segments(virtual_memory ? nullptr : static_cast<SegmentBacking*>(backing.get())),
      single_use_ranges(virtual_memory && config.unmap_on_free),
      debug_hooks(guard->active() ? std::make_unique<DebugHooks>(guard, &frees, &history)
                                  : nullptr),
      debug(debug_hooks.get()),
      queries(AllocatorQueries::Parts{
          .allocated_or_cached = &allocated_or_cached,
          .heap = &heap,
          .reuse_cache = &reuse_cache,
          .backing = backing.get(),
          .chunks = vmm != nullptr ? &vmm->chunks() : nullptr,
          .limits = &limits,
          .settings = &settings,
          .stats = &stats,
          .device = device,
          .front_bytes = guard->front_bytes(),
      }),
      lifecycle(BlockLifecycle::Parts{
          .allocated_or_cached = &allocated_or_cached,
          .heap = &heap,
          .placement = &placement,
          .ledger = &ledger,
          .reuse_cache = &reuse_cache,
          .backing = backing.get(),
          .graph_pools = &graph_pools,
          .frees = &frees,
          .history = &history,
          .debug = debug,
          .queries = &queries,
          .stats = &stats,
          .cross_stream = config.cross_stream,
          .grow_before_reborrowing = virtual_memory,
          .front_bytes = guard->front_bytes(),
          .check_invariants = config.check_invariants,
      }),
      rungs(OomRungs::Parts{
          .host = &lifecycle,
          .heap = &heap,
          .placement = &placement,
          .ledger = &ledger,
          .stats = &stats,
          .limits = &limits,
          .backing = backing.get(),
          .vmm = vmm,
          .segments = segments,
          .graph_pools = &graph_pools,
          .frees = &frees,
          .settings = &settings,
          .caching = config.caching,
          .single_use_ranges = single_use_ranges,
      }) {
  lifecycle.AttachRungs(&rungs);
}

}  // namespace vramcache
