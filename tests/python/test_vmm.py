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


def test_summary_and_snapshot_count_memory_not_address_space(lib):
    # One 3 MiB tensor in a 1 GiB arena: two 2 MiB pages held, 1 MiB of them stranded beside it.
    # "Non-releasable memory" counted the arena's free address space (1021 MiB) before.
    configure(lib, "device:sim,sim_capacity:256MiB")
    ptr = lib.vramcache_try_malloc(3 * MiB, 0, None)
    assert ptr, lib.vramcache_last_error().decode()
    stats = vramcache.memory_stats(0)
    reserved = stats["reserved_bytes.all.current"]
    assert stats["inactive_split_bytes.all.current"] == 1 * MiB
    assert stats["inactive_split_bytes.all.current"] <= reserved - stats["allocated_bytes.all.current"]
    summary = vramcache.memory_summary(0)
    line = next(row for row in summary.splitlines() if "Non-releasable memory" in row)
    assert "1024 KiB" in line, line
    segments = vramcache.snapshot()["segments"]
    assert sum(s["total_size"] for s in segments) == reserved == 4 * MiB
    lib.vramcache_free(ptr, 3 * MiB, 0, None)
    vramcache.empty_cache()
    assert vramcache.snapshot()["segments"] == []
