"""Finds and loads libvramcache.so, and declares the C ABI of allocator/api/vramcache.h.

Search order: the VRAMCACHE_LIBRARY environment variable, the copy inside this package
(what `pip install ./torch_plugin` builds and installs there), then build/*/allocator/libvramcache.so of the
source tree this package sits in (release first, then default, then the newest other build).
"""

import ctypes
import os
import threading
from pathlib import Path
from typing import List, Optional

from ._stats import VramcacheStats

LIBRARY_NAME = "libvramcache.so"
ENV_VARIABLE = "VRAMCACHE_LIBRARY"

# Build directories tried first, in order: optimized before Debug (invariant checks after
# every operation make a Debug library slow). Sanitizer builds need their runtime preloaded
# and are only used when nothing else exists.
_PREFERRED_BUILDS = ("release", "default")
_SANITIZER_BUILDS = ("asan", "tsan")


class VramcacheError(RuntimeError):
    """A call into libvramcache failed; the message is vramcache_last_error()."""


class LibraryNotFoundError(VramcacheError, OSError):
    """libvramcache.so could not be found."""


class LibraryLoadError(VramcacheError, OSError):
    """libvramcache.so was found but could not be loaded, or lacks a symbol."""


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def _repo_build_candidates() -> List[Path]:
    repo = _package_dir().parent.parent
    build = repo / "build"
    if not build.is_dir():
        return []
    found = [p for p in build.glob("*/allocator/" + LIBRARY_NAME) if p.is_file()]
    rank = {name: i for i, name in enumerate(_PREFERRED_BUILDS)}

    def order(path: Path):
        name = path.parent.parent.name
        if name in rank:
            return (0, rank[name], 0.0)
        if name in _SANITIZER_BUILDS:
            return (2, 0, -path.stat().st_mtime)
        return (1, 0, -path.stat().st_mtime)

    return sorted(found, key=order)


def candidate_paths() -> List[Path]:
    """Where the library is looked for, in order (the env variable wins outright)."""
    explicit = os.environ.get(ENV_VARIABLE)
    if explicit:
        return [Path(explicit)]
    return [_package_dir() / LIBRARY_NAME] + _repo_build_candidates()


def find_library() -> Path:
    explicit = os.environ.get(ENV_VARIABLE)
    for path in candidate_paths():
        if path.is_file():
            return path.resolve()
    if explicit:
        raise LibraryNotFoundError(
            f"vramcache: {ENV_VARIABLE}={explicit} does not name an existing file")
    raise LibraryNotFoundError(
        f"vramcache: {LIBRARY_NAME} not found. Install the package from the vramcache "
        f"repository (`pip install ./torch_plugin` builds the library), or build it there "
        f"(`cmake --preset release && cmake --build --preset release`) and set {ENV_VARIABLE} "
        f"to its path. Looked in: " +
        ", ".join(str(p) for p in candidate_paths()) + ", build/*/allocator/")


def _declare(lib: ctypes.CDLL) -> None:
    c_size, c_int, c_ptr, c_str = ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
    signatures = {
        "vramcache_malloc": (c_ptr, [c_size, c_int, c_ptr]),
        "vramcache_try_malloc": (c_ptr, [c_size, c_int, c_ptr]),
        "vramcache_free": (None, [c_ptr, c_size, c_int, c_ptr]),
        "vramcache_last_error": (c_str, []),
        "vramcache_record_stream": (c_int, [c_ptr, c_ptr]),
        "vramcache_stream_destroyed": (c_int, [c_ptr]),
        "vramcache_empty_cache": (c_int, []),
        "vramcache_check_canaries": (c_int, [c_int]),
        "vramcache_last_error_kind": (c_int, []),
        "vramcache_set_memory_fraction": (c_int, [ctypes.c_double, c_int]),
        # (accessing_device, owning_device): the first may use the second's memory.
        "vramcache_enable_peer_access": (c_int, [c_int, c_int]),
        "vramcache_get_stats": (c_int, [c_int, ctypes.POINTER(VramcacheStats)]),
        "vramcache_stats_json": (c_str, [c_int]),
        "vramcache_reset_peak_stats": (c_int, [c_int]),
        "vramcache_reset_accumulated_stats": (c_int, [c_int]),
        "vramcache_snapshot_json": (c_str, []),
        "vramcache_last_oom_json": (c_str, [c_int]),
        "vramcache_device_count": (c_int, []),
        "vramcache_device_total_bytes": (c_size, [c_int]),
        "vramcache_configure": (c_int, [c_str]),
        "vramcache_set_allocator_settings": (c_int, [c_str]),
        "vramcache_configuration_status": (c_int, []),
        "vramcache_shutdown": (c_int, []),
    }
    for name, (restype, argtypes) in signatures.items():
        try:
            function = getattr(lib, name)
        except AttributeError as e:
            raise LibraryLoadError(
                f"vramcache: {lib._name} has no symbol {name}; it is older than this package "
                f"(rebuild it)") from e
        function.restype = restype
        function.argtypes = argtypes


_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_path: Optional[Path] = None


def load() -> ctypes.CDLL:
    """The loaded library (loaded once per process)."""
    global _lib, _path
    with _lock:
        if _lib is None:
            path = find_library()
            try:
                lib = ctypes.CDLL(str(path))
            except OSError as e:
                raise LibraryLoadError(f"vramcache: cannot load {path}: {e}") from e
            _declare(lib)
            _lib, _path = lib, path
        return _lib


def library_path() -> Path:
    """The file the library was loaded from (loads it if needed)."""
    load()
    assert _path is not None
    return _path


def last_error() -> str:
    """vramcache_last_error() of this thread, decoded."""
    message = load().vramcache_last_error()
    return message.decode("utf-8", "replace") if message else ""


def check(rc: int, what: str) -> int:
    """Raises VramcacheError with the library's reason when a call returned -1."""
    if rc < 0:
        raise VramcacheError(last_error() or f"vramcache: {what} failed")
    return rc


def check_str(value: Optional[bytes], what: str) -> str:
    """Decodes a returned string, raising VramcacheError when the call returned NULL."""
    if value is None:
        raise VramcacheError(last_error() or f"vramcache: {what} failed")
    return value.decode("utf-8")
