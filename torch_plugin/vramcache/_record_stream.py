"""Tensor.record_stream on the CUDAPluggableAllocator path: routed to vramcache_record_stream.

PyTorch's pluggable allocator forwards record_stream only to a hook that Python cannot set, so
it does nothing; a tensor freed while a side stream still uses it could then be reused at once
by its allocating stream. route() wraps Tensor.record_stream so that, while vramcache is the
allocator, the tensor's storage is also marked as used by the stream in vramcache: its block
is reused only after that stream's work completes. PyTorch's own method still runs first, so
its argument checks and errors stay as they are.
"""

import functools
from typing import Any

from . import _library, memory

_ROUTED_MARK = "__vramcache_routed__"


def _is_foreign(error: _library.VramcacheError) -> bool:
    # Memory vramcache did not hand out (from_blob, DLPack, IPC): PyTorch's own allocator
    # ignores record_stream on it too.
    return "not a live allocation" in str(error)


def route(torch: Any) -> None:
    """Makes torch.Tensor.record_stream also reach vramcache (once; later calls do nothing)."""
    original = torch.Tensor.record_stream
    if getattr(original, _ROUTED_MARK, False):
        return

    @functools.wraps(original)
    def record_stream(tensor: Any, stream: Any) -> Any:
        result = original(tensor, stream)
        if tensor.is_cuda:
            ptr = tensor.untyped_storage().data_ptr()
            if ptr:  # an empty tensor holds no memory
                try:
                    memory.record_stream(ptr, stream)
                except _library.VramcacheError as e:
                    if not _is_foreign(e):
                        raise
        return result

    setattr(record_stream, _ROUTED_MARK, True)
    torch.Tensor.record_stream = record_stream
