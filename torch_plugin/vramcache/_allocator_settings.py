"""torch.cuda.memory._set_allocator_settings, routed to vramcache while it is installed.

PyTorch hands the text only to its own allocator's configuration, which vramcache does not
read, on either path (the native adapter and CUDAPluggableAllocator alike). route() wraps the
function so that vramcache applies the text first: a key vramcache cannot change in use, or a
bad value, raises before anything changes. PyTorch's own function then runs as before, so the
keys that govern PyTorch's other allocators (the pinned host memory ones) still reach it.
"""

import functools
from typing import Any

from . import memory

_ROUTED_MARK = "__vramcache_routed__"


def route(torch: Any) -> None:
    """Makes torch.cuda.memory._set_allocator_settings also reach vramcache (once)."""
    cuda_memory = torch.cuda.memory
    original = getattr(cuda_memory, "_set_allocator_settings", None)
    if original is None or getattr(original, _ROUTED_MARK, False):
        return

    @functools.wraps(original)
    def _set_allocator_settings(env: str) -> Any:
        memory.set_allocator_settings(env)
        return original(env)

    setattr(_set_allocator_settings, _ROUTED_MARK, True)
    cuda_memory._set_allocator_settings = _set_allocator_settings
