"""The torch.cuda.memory namesakes, answered by vramcache through its C ABI.

Every function has the signature and meaning of its torch.cuda counterpart and works without
PyTorch (on the simulated device, or on a GPU through ctypes). `device=None` means the current
CUDA device when PyTorch has initialized CUDA, else device 0; PyTorch is never imported here,
so asking for statistics cannot initialize CUDA before install() has run.
"""

import collections
import ctypes
import json
import operator
import pickle
import sys
from typing import Any, Dict, Optional

from . import _library
from ._library import VramcacheError, check, check_str
from ._stats import STATS_VERSION, VramcacheStats, new_stats
from ._summary import format_summary


# ctypes converts Python ints to C types by wrapping: without these checks a device index of
# 2**32 becomes device 0 and a size of 2**64 + 4096 becomes 4096. torch raises instead.
_C_INT_MAX = 2**31 - 1
_SIZE_MAX = 2**(8 * ctypes.sizeof(ctypes.c_size_t)) - 1
_POINTER_MAX = 2**(8 * ctypes.sizeof(ctypes.c_void_p)) - 1


def _checked_device(index: int) -> int:
    if index < 0:
        raise ValueError(f"vramcache: device index must be >= 0, got {index}")
    if index > _C_INT_MAX:
        raise OverflowError(f"vramcache: device index {index} is out of range (at most "
                            f"{_C_INT_MAX})")
    return index


def _whole_number(value: Any, what: str, maximum: int) -> int:
    """`value` as an int in [0, maximum]: TypeError, ValueError or OverflowError otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"vramcache: {what} must be an int, got bool")
    try:
        number = operator.index(value)  # ints and integer-like objects (numpy), not floats
    except TypeError:
        raise TypeError(f"vramcache: {what} must be an int, got {type(value).__name__}") from None
    if number < 0:
        raise ValueError(f"vramcache: {what} must be >= 0, got {number}")
    if number > maximum:
        raise OverflowError(f"vramcache: {what} {number} is out of range (at most {maximum})")
    return number


def _current_device() -> int:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return int(torch.cuda.current_device())
    return 0


def device_index(device: Any = None) -> int:
    """An ordinal from None, an int, "cuda"/"cuda:N", or a torch.device (as torch accepts)."""
    if device is None:
        return _current_device()
    if isinstance(device, bool):
        raise TypeError(f"vramcache: invalid device {device!r}")
    if isinstance(device, int):
        return _checked_device(device)
    if isinstance(device, str):
        kind, _, index = device.partition(":")
        if kind != "cuda" or (index and not index.isdigit()):
            raise ValueError(f"vramcache: expected a CUDA device, got {device!r}")
        return _checked_device(int(index)) if index else _current_device()
    kind, index = getattr(device, "type", None), getattr(device, "index", None)
    if kind is None:
        raise TypeError(f"vramcache: invalid device {device!r}")
    if kind != "cuda":
        raise ValueError(f"vramcache: expected a CUDA device, got {device!r}")
    return _checked_device(int(index)) if index is not None else _current_device()


def _stream_handle(stream: Any) -> int:
    if stream is None:
        return 0
    if isinstance(stream, int) and not isinstance(stream, bool):
        return _whole_number(stream, "stream handle", _POINTER_MAX)
    handle = getattr(stream, "cuda_stream", None)  # torch.cuda.Stream
    if not isinstance(handle, int):
        raise TypeError(
            "vramcache: stream must be a torch.cuda.Stream or an int cudaStream_t handle")
    return _whole_number(handle, "stream handle", _POINTER_MAX)


# --- statistics ------------------------------------------------------------------------------


def get_stats(device: Any = None) -> VramcacheStats:
    """The statistics as the C struct `vramcache_stats` (vramcache_get_stats)."""
    stats = new_stats()
    check(_library.load().vramcache_get_stats(device_index(device), ctypes.byref(stats)),
          "vramcache_get_stats")
    if stats.version < STATS_VERSION or stats.struct_size != ctypes.sizeof(VramcacheStats):
        raise VramcacheError(
            f"vramcache: {_library.library_path()} fills statistics version {stats.version} "
            f"({stats.struct_size} bytes); this package reads version {STATS_VERSION} "
            f"({ctypes.sizeof(VramcacheStats)} bytes). Rebuild the library or reinstall the "
            f"package so both come from the same source.")
    return stats


def memory_stats(device: Any = None) -> "collections.OrderedDict[str, int]":
    """torch.cuda.memory_stats(): flat keys such as "allocated_bytes.all.current", sorted."""
    text = check_str(_library.load().vramcache_stats_json(device_index(device)),
                     "vramcache_stats_json")
    return collections.OrderedDict(sorted(json.loads(text).items()))


def memory_stats_as_nested_dict(device: Any = None) -> Dict[str, Any]:
    """torch.cuda.memory_stats_as_nested_dict(): {"allocated_bytes": {"all": {"current": n}}}."""
    nested: Dict[str, Any] = {}
    for key, value in memory_stats(device).items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def memory_allocated(device: Any = None) -> int:
    """Bytes held by live allocations (as blocks, after rounding)."""
    return memory_stats(device)["allocated_bytes.all.current"]


def max_memory_allocated(device: Any = None) -> int:
    """Peak of memory_allocated() since start or the last reset_peak_memory_stats()."""
    return memory_stats(device)["allocated_bytes.all.peak"]


def memory_reserved(device: Any = None) -> int:
    """Bytes vramcache holds from the device (live and cached)."""
    return memory_stats(device)["reserved_bytes.all.current"]


def max_memory_reserved(device: Any = None) -> int:
    """Peak of memory_reserved() since start or the last reset_peak_memory_stats()."""
    return memory_stats(device)["reserved_bytes.all.peak"]


def reset_peak_memory_stats(device: Any = None) -> None:
    """Sets every peak to its current value."""
    check(_library.load().vramcache_reset_peak_stats(device_index(device)),
          "vramcache_reset_peak_stats")


def reset_accumulated_memory_stats(device: Any = None) -> None:
    """Zeroes the "allocated"/"freed" totals and the event counters."""
    check(_library.load().vramcache_reset_accumulated_stats(device_index(device)),
          "vramcache_reset_accumulated_stats")


def memory_summary(device: Any = None, abbreviated: bool = False) -> str:
    """torch.cuda.memory_summary()'s table from vramcache's statistics."""
    index = device_index(device)
    return format_summary(memory_stats(index), index, abbreviated)


# --- cache and budget ------------------------------------------------------------------------


def check_canaries(device: Any = None) -> None:
    """Debug mode canaries: verifies the guard bands of every live allocation on `device`.

    Raises VramcacheError naming each damaged band (allocation, offset, stream) when a kernel
    wrote outside its tensor; does nothing when canaries are off (VRAMCACHE_CONF=canaries:on).
    """
    check(_library.load().vramcache_check_canaries(device_index(device)),
          "vramcache_check_canaries")


def empty_cache() -> None:
    """Returns every cached, unused segment of every device to the device."""
    check(_library.load().vramcache_empty_cache(), "vramcache_empty_cache")


def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
    """Caps this process's reserved memory on `device` at fraction × its total memory.

    As torch: a float in [0, 1] (TypeError for other types, ValueError outside the range);
    0.0 lets nothing be allocated.
    """
    if not isinstance(fraction, float):
        raise TypeError("Invalid type for fraction argument, must be `float`")
    if fraction < 0 or fraction > 1:
        raise ValueError(f"Invalid fraction value: {fraction}. Allowed range: 0~1")
    check(_library.load().vramcache_set_memory_fraction(fraction, device_index(device)),
          "vramcache_set_memory_fraction")


def device_count() -> int:
    """Devices vramcache serves (CUDA devices, or 1 on the simulated device)."""
    return check(_library.load().vramcache_device_count(), "vramcache_device_count")


# --- raw allocation (torch.cuda.caching_allocator_alloc / _delete) ---------------------------


def caching_allocator_alloc(size: int, device: Any = None, stream: Any = None) -> int:
    """Allocates `size` bytes on `device` for `stream`; returns the address (0 for size 0).

    Raises VramcacheError with vramcache's out-of-memory report when it cannot.
    """
    size = _whole_number(size, "size", _SIZE_MAX)
    lib = _library.load()
    ptr = lib.vramcache_try_malloc(size, device_index(device), _stream_handle(stream))
    if ptr is None and size > 0:
        raise VramcacheError(_library.last_error() or "vramcache: allocation failed")
    return ptr or 0


def caching_allocator_delete(mem_ptr: int, device: Any = None) -> None:
    """Frees an address from caching_allocator_alloc (or from PyTorch under install()).

    Unlike torch, the device is an argument: it must be the one the memory came from.
    """
    mem_ptr = _whole_number(mem_ptr, "mem_ptr", _POINTER_MAX)
    lib = _library.load()
    lib.vramcache_free(mem_ptr, 0, device_index(device), None)
    error = _library.last_error()
    if error:
        raise VramcacheError(error)


def set_allocator_settings(settings: str) -> None:
    """torch.cuda.memory._set_allocator_settings for vramcache (PyTorch's syntax and keys).

    Before the first allocation any key applies. Afterwards max_split_size_mb,
    max_non_split_rounding_mb, roundup_power2_divisions and garbage_collection_threshold change
    for the next request on every device; another key that would change anything raises
    VramcacheError naming it, and then nothing changes (docs/pytorch.md)."""
    if not isinstance(settings, str):
        raise TypeError(f"vramcache: settings must be a str, got {type(settings).__name__}")
    check(_library.load().vramcache_set_allocator_settings(settings.encode("utf-8")),
          "vramcache_set_allocator_settings")


def record_stream(mem_ptr: int, stream: Any) -> None:
    """Marks an allocation as used by `stream` too (what Tensor.record_stream asks of torch's
    own allocator); its block is reused only after that stream's work completes."""
    mem_ptr = _whole_number(mem_ptr, "mem_ptr", _POINTER_MAX)
    check(_library.load().vramcache_record_stream(mem_ptr, _stream_handle(stream)),
          "vramcache_record_stream")


def stream_destroyed(stream: Any) -> None:
    """Call before destroying a CUDA stream that allocated through vramcache: memory cached for
    it then waits for its work before a new stream that reuses the handle value can get it."""
    check(_library.load().vramcache_stream_destroyed(_stream_handle(stream)),
          "vramcache_stream_destroyed")


# --- snapshots and out-of-memory reports -----------------------------------------------------


def snapshot() -> Dict[str, Any]:
    """torch.cuda.memory._snapshot(): {"segments": [...], "device_traces": [[...], ...]}.

    device_traces holds entries only when VRAMCACHE_CONF has record_history:true.
    """
    return json.loads(check_str(_library.load().vramcache_snapshot_json(),
                                "vramcache_snapshot_json"))


def dump_snapshot(filename: str = "dump_snapshot.pickle") -> None:
    """torch.cuda.memory._dump_snapshot(): the snapshot pickled, for PyTorch's memory_viz."""
    data = snapshot()
    with open(filename, "wb") as f:
        pickle.dump(data, f)


def last_oom(device: Any = None) -> Optional[Dict[str, Any]]:
    """The last out-of-memory report of `device` (what was asked, held, cached, and the
    verdict), or None when none happened."""
    return json.loads(check_str(_library.load().vramcache_last_oom_json(device_index(device)),
                                "vramcache_last_oom_json"))
