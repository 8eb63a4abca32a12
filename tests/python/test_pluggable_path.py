"""The CUDAPluggableAllocator path is not silently unsafe: Tensor.record_stream reaches
vramcache while it is installed, the fallback from the native adapter warns and says what is
lost (VRAMCACHE_NATIVE=1 makes it an error), and a PyTorch outside the supported range is
refused. Against fake_torch.py, on the simulated device."""

import sys

import pytest
from fake_torch import FakeStream, FakeTorch

import vramcache
from vramcache import _native, _torch, _torch_versions

MiB = 1 << 20
SIDE_STREAM = FakeStream(0x7)


@pytest.fixture(autouse=True)
def not_installed(monkeypatch):
    monkeypatch.setattr(_torch, "_installed", None)
    monkeypatch.setattr(_torch, "_installed_conf", None)


@pytest.fixture
def fake(monkeypatch, sim):
    """FakeTorch as torch, vramcache (on the simulated device) installed through it."""
    fake = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    vramcache.install(native=False)
    return fake


def block_states():
    """{block address: state} of the snapshot's blocks."""
    return {block["address"]: block["state"]
            for segment in vramcache.snapshot()["segments"] for block in segment["blocks"]}


def test_record_stream_reaches_the_allocator(fake):
    used_by_side_stream = vramcache.caching_allocator_alloc(MiB, 0, 0)
    only_own_stream = vramcache.caching_allocator_alloc(MiB, 0, 0)
    fake.Tensor(used_by_side_stream).record_stream(SIDE_STREAM)
    assert fake.recorded == [(used_by_side_stream, SIDE_STREAM)]  # torch's method ran too

    vramcache.caching_allocator_delete(used_by_side_stream, 0)
    vramcache.caching_allocator_delete(only_own_stream, 0)
    # The recorded block waits for the side stream's work; without the routing it would be
    # free for reuse at once, like the other.
    states = block_states()
    assert states[used_by_side_stream] == "active_pending_free"
    assert states[only_own_stream] == "inactive"


def test_record_stream_routing_keeps_torch_behaviour(fake):
    with pytest.raises(RuntimeError, match="only supported for CUDA tensors"):
        fake.Tensor(0x1000, is_cuda=False).record_stream(SIDE_STREAM)
    fake.Tensor(0).record_stream(SIDE_STREAM)  # empty tensor: no memory to mark
    # Memory vramcache did not hand out is ignored, as PyTorch's allocator ignores it.
    fake.Tensor(0x1234).record_stream(SIDE_STREAM)
    assert [ptr for ptr, _ in fake.recorded] == [0, 0x1234]
    ptr = vramcache.caching_allocator_alloc(MiB, 0, 0)
    with pytest.raises(TypeError, match="torch.cuda.Stream"):
        fake.Tensor(ptr).record_stream("stream")  # bad input still says what is wrong
    vramcache.caching_allocator_delete(ptr, 0)


def test_record_stream_is_routed_once(fake):
    routed = fake.Tensor.record_stream
    _torch._record_stream.route(fake)
    assert fake.Tensor.record_stream is routed


def unavailable(conf=None):
    raise _native.NativeUnavailable("no compiler here")


def test_fallback_warns_and_names_what_is_lost(monkeypatch, sim):
    fake = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.setattr(_native, "install", unavailable)
    monkeypatch.delenv("VRAMCACHE_NATIVE", raising=False)
    with pytest.warns(vramcache.NativeFallbackWarning) as caught:
        allocator = vramcache.install()
    message = str(caught[0].message)
    assert "no compiler here" in message
    assert "torch.OutOfMemoryError" in message and "CUDA graph" in message
    assert "record_stream still reaches vramcache" in message
    assert fake.installed == [allocator]


def test_fallback_is_an_error_when_native_is_required(monkeypatch, sim):
    fake = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.setattr(_native, "install", unavailable)
    monkeypatch.setenv("VRAMCACHE_NATIVE", "1")
    with pytest.raises(_native.NativeUnavailable, match="no compiler here"):
        vramcache.install()
    assert fake.installed == [] and not vramcache.is_installed()


@pytest.mark.parametrize("version", ["2.10.1+cu128", "2.16.0", "3.0.0", "nightly"])
def test_unsupported_torch_is_refused(monkeypatch, lib, version):
    fake = FakeTorch(version=version)
    monkeypatch.setitem(sys.modules, "torch", fake)
    with pytest.raises(vramcache.UnsupportedTorchVersion, match="2.11 to 2.15"):
        vramcache.install(native=False)
    assert fake.installed == []


@pytest.mark.parametrize("version", ["2.11.0", "2.12.1+cu128", "2.15.0.dev20261101"])
def test_supported_torch_is_accepted(version):
    assert _torch_versions.check(version)[0] == 2


def test_cxx_standard_follows_the_headers():
    assert _torch_versions.cxx_standard("2.13.0") == "c++17"
    assert _torch_versions.cxx_standard("2.14.1+cu130") == "c++20"
    assert _torch_versions.supported_minors() == ["2.11", "2.12", "2.13", "2.14", "2.15"]
