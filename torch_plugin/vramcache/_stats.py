"""ctypes mirror of `vramcache_stats` (allocator/api/vramcache.h), field for field.

The C struct is versioned: the caller sets struct_size to the size it knows and the library
fills that prefix and sets `version`. Any change to the header's field list must be made here
in the same order, or the offsets of every later field would silently shift.
"""

import ctypes
from typing import Dict, Iterator, Tuple

STATS_VERSION = 1  # VRAMCACHE_STATS_VERSION
POOLS = ("all", "small_pool", "large_pool")
STAT_KINDS = ("current", "peak", "allocated", "freed")

# Counters with a {all, small_pool, large_pool} split (VRAMCACHE_POOL_STATS).
POOL_STATS = ("allocation", "segment", "active", "inactive_split", "allocated_bytes",
              "reserved_bytes", "active_bytes", "inactive_split_bytes", "requested_bytes")
# Counters without a pool split (VRAMCACHE_SINGLE_STATS).
SINGLE_STATS = ("oversize_allocations", "oversize_segments")
# Plain integers: event counters, then gauges (VRAMCACHE_EVENT_COUNTERS, VRAMCACHE_GAUGES).
EVENT_COUNTERS = ("num_alloc_retries", "num_ooms", "num_sync_all_streams", "num_device_alloc",
                  "num_device_free", "num_cache_hits", "num_cross_stream_reuse",
                  "num_cache_releases", "num_map_calls", "num_unmap_calls", "num_stitches")
GAUGES = ("max_split_size", "budget_bytes", "address_space_reserved_bytes")


class VramcacheStat(ctypes.Structure):
    """`vramcache_stat`: one counter's value now, high-water mark, total added, total removed."""
    _fields_ = [(kind, ctypes.c_int64) for kind in STAT_KINDS]


class VramcacheStats(ctypes.Structure):
    """`vramcache_stats`."""
    _fields_ = ([("struct_size", ctypes.c_uint64), ("version", ctypes.c_uint64)] +
                [(name, VramcacheStat * len(POOLS)) for name in POOL_STATS] +
                [(name, VramcacheStat) for name in SINGLE_STATS] +
                [(name, ctypes.c_int64) for name in EVENT_COUNTERS + GAUGES])

    def items(self) -> Iterator[Tuple[str, int]]:
        """(key, value) pairs with torch.cuda.memory_stats() names, unsorted."""
        for name in POOL_STATS:
            for pool, stat in zip(POOLS, getattr(self, name)):
                for kind in STAT_KINDS:
                    yield f"{name}.{pool}.{kind}", getattr(stat, kind)
        for name in SINGLE_STATS:
            stat = getattr(self, name)
            for kind in STAT_KINDS:
                yield f"{name}.{kind}", getattr(stat, kind)
        for name in EVENT_COUNTERS + GAUGES:
            yield name, getattr(self, name)

    def to_dict(self) -> Dict[str, int]:
        """The flat statistics as a dict sorted by key, like torch.cuda.memory_stats()."""
        return dict(sorted(self.items()))


def new_stats() -> VramcacheStats:
    """A zeroed struct with struct_size set, ready for vramcache_get_stats."""
    stats = VramcacheStats()
    stats.struct_size = ctypes.sizeof(VramcacheStats)
    return stats
