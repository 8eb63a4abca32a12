"""The virtual-memory mode (the default on a device that supports it) seen from Python:
reserved bytes are the physical pages held, not the address space, and empty_cache gives the
free chunks back."""

import vramcache
from conftest import MiB, configure


def test_reserved_follows_pages_and_empty_cache_releases_them(lib):
    configure(lib, "device:sim,sim_capacity:256MiB")
    ptr = lib.vramcache_try_malloc(3 * MiB, 0, None)
    assert ptr, lib.vramcache_last_error().decode()
    stats = vramcache.memory_stats(0)
    assert stats["reserved_bytes.all.current"] == 4 * MiB  # two 2 MiB pages, not a segment
    assert stats["address_space_reserved_bytes"] >= 1 << 30
    lib.vramcache_free(ptr, 3 * MiB, 0, None)
    assert vramcache.memory_reserved(0) == 4 * MiB  # free pages keep their chunks
    vramcache.empty_cache()
    assert vramcache.memory_reserved(0) == 0
    stats = vramcache.memory_stats(0)
    assert stats["num_device_alloc"] == 2 and stats["num_device_free"] == 2
    assert stats["num_map_calls"] == 2 and stats["num_unmap_calls"] == 2
