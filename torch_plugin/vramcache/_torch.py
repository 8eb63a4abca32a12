"""install(): makes vramcache PyTorch's CUDA allocator, natively (the C++ adapter of
torch_plugin/native, see _native.py) or through CUDAPluggableAllocator.

PyTorch's pluggable path takes exactly two symbols, an allocate and a free with the signatures
of vramcache_malloc / vramcache_free; the native path implements PyTorch's whole allocator
interface. Either must be set before CUDA is initialized: PyTorch refuses to swap an allocator
that has already handed out memory.
"""

import os
import re
import threading
import warnings
from typing import Any, Optional

from . import _allocator_settings, _library, _native, _record_stream, _torch_versions

ALLOC_SYMBOL = "vramcache_malloc"
FREE_SYMBOL = "vramcache_free"

_DEVICE_KEY = re.compile(r"(?:^|,)\s*device\s*:\s*(\w+)\s*(?=,|$)")

NATIVE_VARIABLE = "VRAMCACHE_NATIVE"  # install()'s default for native: 1, 0 or auto
_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _native_choice(native: Optional[bool]) -> Optional[bool]:
    """native=, else VRAMCACHE_NATIVE: True (must), False (never) or None (when possible)."""
    if native is not None:
        return bool(native)
    value = os.environ.get(NATIVE_VARIABLE, "").strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    if value in ("", "auto"):
        # Verified on an H100 (docs/benchmarks.md): native when it can be built or found for
        # the installed torch, else the pluggable path with a NativeFallbackWarning.
        return None
    raise ValueError(f"vramcache: {NATIVE_VARIABLE}={value!r}; use 1, 0 or auto")


def _selected_device(conf: Optional[str]) -> Optional[tuple]:
    """(where, kind) of the device key that applies: conf's over VRAMCACHE_CONF's."""
    for where, text in (("conf", conf), ("VRAMCACHE_CONF", os.environ.get("VRAMCACHE_CONF"))):
        found = _DEVICE_KEY.findall(text or "")
        if found:
            return where, found[-1]
    return None


# What the CUDAPluggableAllocator path lacks (docs/pytorch.md), for the fallback's warning.
# Tensor.record_stream is not among them: install() routes it to vramcache (_record_stream.py).
_LOST_WITHOUT_NATIVE = ("torch.cuda.memory_stats/memory_allocated/empty_cache/memory_summary/"
                        "_snapshot, private CUDA graph pools (torch.cuda.graph, MemPool), "
                        "torch.OutOfMemoryError, CUDA IPC and cuDNN autotuning")


class NativeFallbackWarning(RuntimeWarning):
    """install() could not have the native adapter and uses CUDAPluggableAllocator instead."""


_lock = threading.Lock()
_installed: Optional[Any] = None  # the CUDAPluggableAllocator, once installed
_installed_conf: Optional[str] = None


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "vramcache.install() needs PyTorch (pip install torch). The statistics functions "
            "(vramcache.memory_allocated(), memory_stats(), ...) work without it.") from e
    return torch


def configure(conf: str) -> None:
    """Applies a VRAMCACHE_CONF-style string (e.g. "budget:20GiB,record_history:true").

    Must come before the first allocation on any device; fails with the reason otherwise.
    """
    if not isinstance(conf, str):
        raise TypeError(f"vramcache: conf must be a str, got {type(conf).__name__}")
    _library.check(_library.load().vramcache_configure(conf.encode("utf-8")),
                   "vramcache_configure")


def install(conf: Optional[str] = None, native: Optional[bool] = None) -> Any:
    """Makes vramcache the allocator of every CUDA tensor PyTorch creates from now on.

    Call it before anything initializes CUDA (before the first CUDA tensor, and before
    torch.cuda.current_device(), torch.cuda.synchronize(), ...). `conf` uses VRAMCACHE_CONF's
    syntax and overrides it; without it the environment's VRAMCACHE_CONF and PyTorch's
    PYTORCH_ALLOC_CONF apply. Calling it again with the same (or no) conf does nothing.

    `native`: True installs the native adapter (PyTorch's own memory functions, CUDA graphs,
    torch.OutOfMemoryError; compiled on first use, see docs/pytorch.md) or raises
    vramcache._native.NativeUnavailable; False uses CUDAPluggableAllocator; None follows
    VRAMCACHE_NATIVE (1: native, 0: pluggable, auto or unset: native when it can be built or
    found, else pluggable with a NativeFallbackWarning saying what is lost). On the pluggable
    path Tensor.record_stream is routed to vramcache while installed, and on both paths
    torch.cuda.memory._set_allocator_settings is (set_allocator_settings). Raises
    UnsupportedTorchVersion for a PyTorch outside the supported range (_torch_versions.py).
    Returns the native allocator handle or the torch.cuda.memory.CUDAPluggableAllocator.
    """
    global _installed, _installed_conf
    with _lock:
        if _installed is not None:
            if conf is not None and conf != _installed_conf:
                raise RuntimeError(
                    f"vramcache is already installed with conf {_installed_conf!r}; the "
                    f"configuration cannot change once PyTorch uses it (asked for {conf!r})")
            return _installed
        torch = _import_torch()
        _torch_versions.check(getattr(torch, "__version__", "unknown"))
        if torch.cuda.is_initialized():
            raise RuntimeError(
                "vramcache.install() must run before CUDA is initialized: PyTorch cannot swap "
                "its allocator once CUDA memory exists. Call it at the top of the program, or "
                "start the program with `python -m vramcache script.py`.")
        selected = _selected_device(conf)
        if selected is not None and selected[1] == "sim":
            # The simulated device hands out host addresses; CUDA kernels would fault on them.
            raise RuntimeError(
                f"vramcache.install(): {selected[0]} selects the simulated device (device:sim), "
                f"whose addresses are host memory; PyTorch's CUDA tensors need device:cuda (or "
                f"no device key)")
        if conf is None:
            # A bad VRAMCACHE_CONF or PyTorch variable fails here, not at the first allocation
            # (an explicit conf is checked when it is applied, below).
            _library.check(_library.load().vramcache_configuration_status(),
                           "vramcache_configuration_status")
        use_native = _native_choice(native)
        if use_native is not False:
            try:
                allocator = _native.install(conf)  # applies conf itself
            except _native.NativeUnavailable as e:
                if use_native:
                    raise
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                warnings.warn(f"vramcache: native integration unavailable ({reason}); using "
                              f"CUDAPluggableAllocator, which lacks {_LOST_WITHOUT_NATIVE} "
                              f"(Tensor.record_stream still reaches vramcache). "
                              f"{NATIVE_VARIABLE}=1 makes this an error, install(native=False) "
                              f"skips this warning.", NativeFallbackWarning, stacklevel=2)
            else:
                _allocator_settings.route(torch)
                _installed, _installed_conf = allocator, conf
                return allocator
        if conf is not None:
            configure(conf)
        path = str(_library.library_path())
        allocator = torch.cuda.memory.CUDAPluggableAllocator(path, ALLOC_SYMBOL, FREE_SYMBOL)
        torch.cuda.memory.change_current_allocator(allocator)
        # PyTorch's pluggable allocator drops record_stream (its hook is C++ only): without this
        # a tensor freed while a side stream still reads it could be handed out again at once.
        _record_stream.route(torch)
        # PyTorch gives _set_allocator_settings' text only to its own allocator's configuration.
        _allocator_settings.route(torch)
        _installed, _installed_conf = allocator, conf
        return allocator


def is_installed() -> bool:
    """Whether install() has made vramcache PyTorch's allocator in this process."""
    return _installed is not None
