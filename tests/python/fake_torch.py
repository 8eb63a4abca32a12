"""A stand-in for the parts of torch that vramcache.install() uses (torch itself is absent on
CPU machines; tests/gpu/ runs the real thing): torch.__version__, torch.cuda.is_initialized /
current_device / memory.CUDAPluggableAllocator / memory.change_current_allocator, and
torch.Tensor with record_stream, torch.cuda.memory._set_allocator_settings, recording what
install() and the tests do."""

import types


class FakeTorch(types.ModuleType):

    def __init__(self, initialized=False, current_device=0, version="2.13.0+cu130"):
        super().__init__("torch")
        self.__version__ = version
        self.created, self.installed, self.recorded = [], [], []
        fake = self

        class CUDAPluggableAllocator:
            def __init__(self, path, alloc_fn_name, free_fn_name):
                self.args = (path, alloc_fn_name, free_fn_name)
                fake.created.append(self)

        class Tensor:
            """A tensor over `ptr` (its storage's base address), on CUDA unless told."""

            def __init__(self, ptr, is_cuda=True):
                self.ptr, self.is_cuda = ptr, is_cuda

            def untyped_storage(self):
                return types.SimpleNamespace(data_ptr=lambda: self.ptr)

            def record_stream(self, stream):
                # As PyTorch's pluggable allocator: noted, and nothing reaches the allocator.
                if not self.is_cuda:
                    raise RuntimeError("record_stream is only supported for CUDA tensors")
                fake.recorded.append((self.ptr, stream))

        self.settings = []

        def _set_allocator_settings(env):
            # As PyTorch: the text goes to its own allocator's configuration only.
            if not isinstance(env, str):
                raise TypeError("_set_allocator_settings expects a str")
            fake.settings.append(env)

        self.Tensor = Tensor
        self.cuda = types.SimpleNamespace(
            is_initialized=lambda: initialized,
            current_device=lambda: current_device,
            memory=types.SimpleNamespace(CUDAPluggableAllocator=CUDAPluggableAllocator,
                                         change_current_allocator=self.installed.append,
                                         _set_allocator_settings=_set_allocator_settings))


class FakeStream:
    """torch.cuda.Stream's handle attribute."""

    def __init__(self, handle):
        self.cuda_stream = handle
