"""The debug modes through the C ABI and the Python package: on a simulated device with real
host memory (sim_backing:memory) a stray write past a tensor is caught by the canaries, at free
(reported on stderr, since PyTorch's free cannot fail) and by vramcache.check_canaries()."""

import ctypes

import pytest

import vramcache
from conftest import configure


def test_check_canaries_names_the_damaged_allocation_and_offset(lib, capfd):
    configure(lib, "device:sim,sim_capacity:256MiB,sim_backing:memory,canaries:on")
    ptr = lib.vramcache_try_malloc(1000, 0, None)
    assert ptr, lib.vramcache_last_error().decode()
    vramcache.check_canaries(0)  # intact: no error
    ctypes.memset(ptr + 1000, 0, 1)  # one byte past the end, as a buggy kernel would
    with pytest.raises(vramcache.VramcacheError) as caught:
        vramcache.check_canaries(0)
    message = str(caught.value)
    assert f"allocation {ptr:#x} (1000 bytes" in message
    assert "offset +1000 (end + 0)" in message
    lib.vramcache_free(ptr, 1000, 0, None)
    err = capfd.readouterr().err
    assert "out-of-bounds write detected" in err and "end + 0" in err
    assert "end + 0" in lib.vramcache_last_error().decode()
    assert lib.vramcache_last_error_kind() == 3  # VRAMCACHE_ERROR_CORRUPTION: freed all the same
    # Freed all the same: a second free is an unknown pointer.
    lib.vramcache_free(ptr, 1000, 0, None)
    assert "not a live allocation" in lib.vramcache_last_error().decode()


def test_check_canaries_without_canaries_is_a_no_op(lib):
    configure(lib, "device:sim,sim_capacity:256MiB")
    ptr = lib.vramcache_try_malloc(1000, 0, None)
    vramcache.check_canaries(0)
    lib.vramcache_free(ptr, 1000, 0, None)


def test_poison_on_free_fills_freed_memory(lib):
    configure(lib, "device:sim,sim_capacity:256MiB,sim_backing:memory,poison_on_free:on,"
                   "reuse_cache:0")
    ptr = lib.vramcache_try_malloc(4096, 0, None)
    ctypes.memset(ptr, 0x42, 4096)
    lib.vramcache_free(ptr, 4096, 0, None)
    assert ctypes.string_at(ptr, 8) == bytes([0xff, 0x7f]) * 4  # NaN in every float format


def test_unmap_on_free_without_virtual_memory_is_refused(lib):
    assert lib.vramcache_configure(b"device:sim,vmm:off,unmap_on_free:on") == -1
    assert "unmap_on_free" in lib.vramcache_last_error().decode()
