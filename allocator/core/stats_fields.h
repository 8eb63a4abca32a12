// The one list of statistics. The struct, reset functions, JSON and the
// torch.cuda.memory_stats() key names are all derived from these X-macros, so a counter
// cannot be added in one place and forgotten in another. Meanings: docs/stats.md.
#pragma once

// Counters kept per pool ({all, small_pool, large_pool}) as {current, peak, allocated, freed}.
#define VRAMCACHE_POOL_STATS(X) \
  X(allocation)                 \
  X(segment)                    \
  X(active)                     \
  X(inactive_split)             \
  X(allocated_bytes)            \
  X(reserved_bytes)             \
  X(active_bytes)               \
  X(inactive_split_bytes)       \
  X(requested_bytes)

// Counters with {current, peak, allocated, freed} but no pool split.
#define VRAMCACHE_SINGLE_STATS(X) \
  X(oversize_allocations)         \
  X(oversize_segments)

// Plain event counters (monotonic until reset_accumulated).
#define VRAMCACHE_EVENT_COUNTERS(X) \
  X(num_alloc_retries)              \
  X(num_ooms)                       \
  X(num_sync_all_streams)           \
  X(num_device_alloc)               \
  X(num_device_free)                \
  X(num_cache_hits)                 \
  X(num_cross_stream_reuse)         \
  X(num_cache_releases)             \
  X(num_map_calls)                  \
  X(num_unmap_calls)                \
  X(num_stitches)

// Values that are settings or gauges, not accumulations.
#define VRAMCACHE_GAUGES(X) \
  X(max_split_size)         \
  X(budget_bytes)           \
  X(address_space_reserved_bytes)
