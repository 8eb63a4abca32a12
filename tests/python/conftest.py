"""Fixtures for the vramcache Python tests: the package from torch_plugin/, and the library on
a fresh simulated device for every test (tests skip when libvramcache.so is not built)."""

import ctypes
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "torch_plugin"
if str(PLUGIN) not in sys.path:
    sys.path.insert(0, str(PLUGIN))

import vramcache  # noqa: E402
from vramcache import _library  # noqa: E402

MiB = 1 << 20
SIM_CAPACITY = 256 * MiB
# Segment mode: these tests pin PyTorch's segment layout (20 MiB segments, reserved_bytes per
# segment); the virtual-memory mode, the default, has its own tests (test_vmm.py).
SIM_CONF = f"device:sim,sim_capacity:{SIM_CAPACITY // MiB}MiB,vmm:off"


def load_or_skip() -> ctypes.CDLL:
    try:
        return _library.load()
    except _library.LibraryNotFoundError as e:
        pytest.skip(f"libvramcache.so is not built: {e}")


@pytest.fixture
def lib(monkeypatch):
    """The library with no allocator and no configuration, and PyTorch's variables unset."""
    for name in ("VRAMCACHE_CONF", "PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF"):
        monkeypatch.delenv(name, raising=False)
    lib = load_or_skip()
    assert lib.vramcache_shutdown() == 0, _library.last_error()
    yield lib
    assert lib.vramcache_shutdown() == 0, _library.last_error()


def configure(lib, conf: str) -> None:
    assert lib.vramcache_configure(conf.encode()) == 0, _library.last_error()


@pytest.fixture
def sim(lib):
    """The library on a 256 MiB simulated device."""
    configure(lib, SIM_CONF)
    return lib


@pytest.fixture
def sim_history(lib):
    """As `sim`, recording the allocation history (snapshot device_traces)."""
    configure(lib, SIM_CONF + ",record_history:true")
    return lib
