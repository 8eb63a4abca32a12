"""vramcache: a stream-aware caching allocator for CUDA device memory, for PyTorch.

    import vramcache
    vramcache.install()               # before CUDA is initialized
    ...
    vramcache.max_memory_allocated()  # torch.cuda's names and meanings

or, without touching the program: `python -m vramcache train.py --epochs 3`. The statistics,
snapshot and cache functions work without PyTorch too. docs/pytorch.md says what this path
covers and what needs the native integration.
"""

from ._library import LibraryLoadError, LibraryNotFoundError, VramcacheError, library_path
from ._stats import VramcacheStat, VramcacheStats
from ._torch import NativeFallbackWarning, configure, install, is_installed
from ._torch_versions import UnsupportedTorchVersion
from .memory import (caching_allocator_alloc, caching_allocator_delete, check_canaries, device_count,
                     dump_snapshot, empty_cache, get_stats, last_oom, max_memory_allocated,
                     max_memory_reserved, memory_allocated, memory_reserved, memory_stats,
                     memory_stats_as_nested_dict, memory_summary, record_stream,
                     reset_accumulated_memory_stats, reset_peak_memory_stats,
                     set_allocator_settings, set_per_process_memory_fraction, snapshot,
                     stream_destroyed)

__version__ = "0.1.0"

__all__ = [
    "LibraryLoadError", "LibraryNotFoundError", "NativeFallbackWarning",
    "UnsupportedTorchVersion", "VramcacheError", "VramcacheStat", "VramcacheStats",
    "caching_allocator_alloc", "caching_allocator_delete", "check_canaries", "configure",
    "device_count",
    "dump_snapshot", "empty_cache", "get_stats", "install", "is_installed", "last_oom",
    "library_path", "max_memory_allocated", "max_memory_reserved", "memory_allocated",
    "memory_reserved", "memory_stats", "memory_stats_as_nested_dict", "memory_summary",
    "record_stream", "reset_accumulated_memory_stats", "reset_peak_memory_stats",
    "set_allocator_settings", "set_per_process_memory_fraction", "snapshot", "stream_destroyed",
]
