"""install() against a stand-in for torch's pluggable-allocator API (fake_torch.py;
tests/gpu/test_torch_pluggable.py runs the real thing): the right library and
symbols are handed over, the order rule (before CUDA initializes) is enforced, and the
configuration reaches the library."""

import ctypes
import sys

import pytest
from fake_torch import FakeTorch

import vramcache
from vramcache import _torch


@pytest.fixture(autouse=True)
def not_installed(monkeypatch):
    monkeypatch.setattr(_torch, "_installed", None)
    monkeypatch.setattr(_torch, "_installed_conf", None)


def test_install_without_torch_says_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="needs PyTorch"):
        vramcache.install()
    assert not vramcache.is_installed()


def test_install_after_cuda_initialized_is_refused(monkeypatch, lib):
    fake = FakeTorch(initialized=True)
    monkeypatch.setitem(sys.modules, "torch", fake)
    with pytest.raises(RuntimeError, match="before CUDA is initialized"):
        vramcache.install()
    assert fake.created == [] and fake.installed == []


def test_install_hands_the_library_and_symbols_to_torch(monkeypatch, lib):
    fake = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    allocator = vramcache.install("budget:32MiB", native=False)  # no GPU: simulated device
    assert fake.installed == [allocator]
    path, alloc_name, free_name = allocator.args
    assert path == str(vramcache.library_path())
    library = ctypes.CDLL(path)
    assert getattr(library, alloc_name) and getattr(library, free_name)
    assert (alloc_name, free_name) == ("vramcache_malloc", "vramcache_free")
    assert vramcache.is_installed()
    assert vramcache.memory_stats()["budget_bytes"] == 32 << 20

    # Again with the same or no conf: nothing new; with another conf: refused.
    assert vramcache.install() is allocator
    assert vramcache.install("budget:32MiB") is allocator
    assert len(fake.created) == 1
    with pytest.raises(RuntimeError, match="already installed"):
        vramcache.install("budget:64MiB")


def test_install_refuses_the_simulated_device(monkeypatch, lib):
    fake = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    with pytest.raises(RuntimeError, match="simulated device"):
        vramcache.install("budget:1GiB, device : sim")
    monkeypatch.setenv("VRAMCACHE_CONF", "device:sim")
    with pytest.raises(RuntimeError, match="VRAMCACHE_CONF selects the simulated device"):
        vramcache.install("budget:1GiB")
    assert fake.installed == []
    assert _torch._selected_device("device:cuda") == ("conf", "cuda")  # conf wins


def test_install_with_bad_conf_installs_nothing(monkeypatch, lib):
    fake = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    with pytest.raises(vramcache.VramcacheError, match="no_such_key"):
        vramcache.install("no_such_key:1", native=False)
    assert fake.installed == [] and not vramcache.is_installed()
    with pytest.raises(TypeError):
        vramcache.configure(42)


@pytest.mark.parametrize("variable", ["VRAMCACHE_CONF", "PYTORCH_CUDA_ALLOC_CONF"])
def test_install_raises_a_bad_environment_at_once(monkeypatch, lib, variable):
    fake = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.setenv(variable, "no_such_key:1")
    with pytest.raises(vramcache.VramcacheError, match=f"{variable}: unknown key"):
        vramcache.install(native=False)
    assert fake.installed == [] and not vramcache.is_installed()


def test_install_with_conf_replaces_a_bad_environment(monkeypatch, lib, capfd):
    fake = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:lots")
    allocator = vramcache.install("budget:32MiB", native=False)
    assert fake.installed == [allocator]
    assert vramcache.memory_stats()["budget_bytes"] == 32 << 20
    assert "PYTORCH_CUDA_ALLOC_CONF: bad value" in capfd.readouterr().err


def test_default_device_follows_torch_once_cuda_is_initialized(monkeypatch, sim):
    monkeypatch.setitem(sys.modules, "torch", FakeTorch(initialized=True, current_device=1))
    with pytest.raises(vramcache.VramcacheError, match="device 1 does not exist"):
        vramcache.memory_allocated()
    assert vramcache.memory_allocated(0) == 0
    # Not initialized: device 0, and torch.cuda.current_device() is never called.
    monkeypatch.setitem(sys.modules, "torch", FakeTorch(initialized=False, current_device=1))
    assert vramcache.memory_allocated() == 0
