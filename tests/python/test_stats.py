"""The Python statistics (torch.cuda namesakes) against the C struct, the JSON, and values
computed by hand from the documented rounding rules (docs/stats.md, size_classes.h):
requests <= 1 MiB go to size classes (512-byte steps to 4 KiB, then 8 per doubling) carved
from 2 MiB small segments; larger ones are rounded to 512 bytes, with (1, 10] MiB requests
carved from 20 MiB segments and larger ones given a segment rounded up to 2 MiB. A large free
remainder is split off only when it exceeds 1 MiB."""

import collections
import types

import pytest

import vramcache
from conftest import SIM_CAPACITY, MiB

KiB = 1024


def python_stats():
    return vramcache.memory_stats()


def test_empty_allocator(sim):
    assert vramcache.memory_allocated() == 0
    assert vramcache.max_memory_allocated() == 0
    assert vramcache.memory_reserved() == 0
    assert vramcache.max_memory_reserved() == 0
    stats = python_stats()
    assert isinstance(stats, collections.OrderedDict)
    assert list(stats) == sorted(stats)
    assert all(v == 0 for k, v in stats.items() if k != "max_split_size")
    assert stats["max_split_size"] == -1  # unlimited, as PyTorch reports it


def test_torch_key_names(sim):
    stats = python_stats()
    for name in ("allocation", "segment", "active", "inactive_split", "allocated_bytes",
                 "reserved_bytes", "active_bytes", "inactive_split_bytes", "requested_bytes"):
        for pool in ("all", "large_pool", "small_pool"):
            for kind in ("current", "peak", "allocated", "freed"):
                assert f"{name}.{pool}.{kind}" in stats
    for name in ("oversize_allocations", "oversize_segments"):
        for kind in ("current", "peak", "allocated", "freed"):
            assert f"{name}.{kind}" in stats
    for name in ("num_alloc_retries", "num_ooms", "num_sync_all_streams", "num_device_alloc",
                 "num_device_free", "max_split_size"):
        assert name in stats


class Scenario:
    """a=1000 B, b=5000 B (small pool, one 2 MiB segment), c=3 MiB (a 20 MiB segment, the
    17 MiB rest split off), d=24 MiB (its own 24 MiB segment: the 17 MiB rest is too small)."""

    sizes = {"a": 1000, "b": 5000, "c": 3 * MiB, "d": 24 * MiB}
    rounded = {"a": 1024, "b": 5120, "c": 3 * MiB, "d": 24 * MiB}

    def __init__(self):
        self.ptrs = {k: vramcache.caching_allocator_alloc(n) for k, n in self.sizes.items()}

    def free(self, name):
        vramcache.caching_allocator_delete(self.ptrs.pop(name))


def test_scenario_by_hand(sim):
    s = Scenario()
    small_alloc, large_alloc = 1024 + 5120, 3 * MiB + 24 * MiB
    stats = python_stats()
    expected = {
        "allocated_bytes.small_pool.current": small_alloc,
        "allocated_bytes.large_pool.current": large_alloc,
        "allocated_bytes.all.current": small_alloc + large_alloc,
        "requested_bytes.small_pool.current": 6000,
        "requested_bytes.large_pool.current": large_alloc,
        "requested_bytes.all.current": 6000 + large_alloc,
        "reserved_bytes.small_pool.current": 2 * MiB,
        "reserved_bytes.large_pool.current": 20 * MiB + 24 * MiB,
        "segment.small_pool.current": 1,
        "segment.large_pool.current": 2,
        "allocation.all.current": 4,
        "active.all.current": 4,
        "active_bytes.all.current": small_alloc + large_alloc,
        "inactive_split.small_pool.current": 1,
        "inactive_split_bytes.small_pool.current": 2 * MiB - small_alloc,
        "inactive_split.large_pool.current": 1,
        "inactive_split_bytes.large_pool.current": 17 * MiB,
        "num_device_alloc": 3,
        "num_cache_hits": 1,  # b came from a's segment
        "num_device_free": 0,
    }
    assert {k: stats[k] for k in expected} == expected
    assert vramcache.memory_allocated() == small_alloc + large_alloc
    assert vramcache.memory_reserved() == 46 * MiB

    # Freed blocks wait whole in the reuse cache (for the next request of their size), still
    # split from their neighbours: c's block and its 17 MiB rest, a's block and its rest.
    s.free("c")
    s.free("a")
    stats = python_stats()
    assert stats["allocated_bytes.all.current"] == 5120 + 24 * MiB
    assert stats["allocated_bytes.all.peak"] == small_alloc + large_alloc
    assert stats["allocated_bytes.all.allocated"] == small_alloc + large_alloc
    assert stats["allocated_bytes.all.freed"] == 1024 + 3 * MiB
    assert stats["requested_bytes.all.freed"] == 1000 + 3 * MiB
    assert stats["inactive_split.large_pool.current"] == 2
    assert stats["inactive_split_bytes.large_pool.current"] == 20 * MiB
    assert stats["inactive_split.small_pool.current"] == 2
    assert stats["inactive_split_bytes.small_pool.current"] == 2 * MiB - 5120
    assert stats["reserved_bytes.all.current"] == 46 * MiB  # cached, not released
    assert vramcache.max_memory_allocated() == small_alloc + large_alloc
    assert vramcache.max_memory_reserved() == 46 * MiB

    # empty_cache coalesces first: c's segment is whole again and goes; a stays split off b.
    vramcache.empty_cache()
    stats = python_stats()
    assert stats["reserved_bytes.large_pool.current"] == 24 * MiB
    assert stats["reserved_bytes.all.peak"] == 46 * MiB
    assert stats["reserved_bytes.all.freed"] == 20 * MiB
    assert stats["num_device_free"] == 1
    assert stats["segment.all.current"] == 2
    assert stats["inactive_split.large_pool.current"] == 0
    assert stats["inactive_split.small_pool.current"] == 2

    vramcache.reset_peak_memory_stats()
    assert vramcache.max_memory_allocated() == 5120 + 24 * MiB
    assert vramcache.max_memory_reserved() == 26 * MiB

    vramcache.reset_accumulated_memory_stats()
    stats = python_stats()
    assert stats["allocated_bytes.all.allocated"] == 0
    assert stats["allocated_bytes.all.freed"] == 0
    assert stats["num_device_alloc"] == 0 and stats["num_cache_hits"] == 0
    assert stats["allocated_bytes.all.current"] == 5120 + 24 * MiB  # untouched

    s.free("b")
    s.free("d")
    vramcache.empty_cache()
    stats = python_stats()
    assert stats["allocated_bytes.all.current"] == 0
    assert stats["reserved_bytes.all.current"] == 0
    assert stats["allocated_bytes.all.freed"] == 5120 + 24 * MiB
    assert stats["num_device_free"] == 2


def test_python_stats_equal_struct_and_json(sim):
    s = Scenario()
    s.free("b")
    struct = vramcache.get_stats().to_dict()
    assert struct == dict(python_stats())
    nested = vramcache.memory_stats_as_nested_dict()
    assert nested["allocated_bytes"]["large_pool"]["peak"] == struct[
        "allocated_bytes.large_pool.peak"]
    assert nested["oversize_segments"]["current"] == struct["oversize_segments.current"]
    assert nested["num_ooms"] == struct["num_ooms"]
    flattened = {}
    for key, value in nested.items():
        if isinstance(value, dict):
            for pool, kinds in value.items():
                if isinstance(kinds, dict):
                    flattened.update({f"{key}.{pool}.{k}": v for k, v in kinds.items()})
                else:
                    flattened[f"{key}.{pool}"] = kinds
        else:
            flattened[key] = value
    assert flattened == struct


def test_requested_bytes_are_exact_for_any_size(sim):
    sizes = [1, 511, 513, 4097, 65537, MiB - 1, MiB + 1, 10 * MiB + 3]
    ptrs = [vramcache.caching_allocator_alloc(n) for n in sizes]
    stats = python_stats()
    assert stats["requested_bytes.all.current"] == sum(sizes)
    assert stats["requested_bytes.small_pool.current"] == sum(n for n in sizes if n <= MiB)
    assert stats["allocated_bytes.all.current"] >= sum(sizes)
    assert stats["allocation.all.current"] == len(sizes)
    for p in ptrs:
        vramcache.caching_allocator_delete(p)
    assert vramcache.memory_allocated() == 0
    assert python_stats()["requested_bytes.all.freed"] == sum(sizes)


def test_device_arguments(sim):
    ptr = vramcache.caching_allocator_alloc(MiB)
    assert vramcache.memory_allocated(0) == MiB
    assert vramcache.memory_allocated("cuda") == MiB
    assert vramcache.memory_allocated("cuda:0") == MiB
    with pytest.raises(vramcache.VramcacheError, match="device 1 does not exist"):
        vramcache.memory_allocated(1)
    with pytest.raises(ValueError):
        vramcache.memory_allocated("cpu")
    with pytest.raises(TypeError):
        vramcache.memory_allocated(3.0)
    # torch.device("cuda", 0) / torch.device("cpu") without importing torch: same attributes.
    assert vramcache.memory_allocated(types.SimpleNamespace(type="cuda", index=0)) == MiB
    assert vramcache.memory_allocated(types.SimpleNamespace(type="cuda", index=None)) == MiB
    with pytest.raises(ValueError):
        vramcache.memory_allocated(types.SimpleNamespace(type="cpu", index=None))
    vramcache.caching_allocator_delete(ptr, device=0)


def test_caching_allocator_alloc_errors(sim):
    assert vramcache.caching_allocator_alloc(0) == 0
    with pytest.raises(ValueError):
        vramcache.caching_allocator_alloc(-1)
    with pytest.raises(vramcache.VramcacheError, match="out of memory"):
        vramcache.caching_allocator_alloc(SIM_CAPACITY + MiB)
    with pytest.raises(vramcache.VramcacheError):
        vramcache.caching_allocator_delete(0x4000)
    ptr = vramcache.caching_allocator_alloc(512)
    vramcache.caching_allocator_delete(ptr)
    with pytest.raises(vramcache.VramcacheError):
        vramcache.caching_allocator_delete(ptr)  # double free
    assert vramcache.memory_allocated() == 0


def test_sizes_and_devices_that_do_not_fit_c_are_refused(sim):
    # ctypes would wrap them: 2**64 + 4096 bytes became a 4 KiB block, device 2**32 device 0.
    with pytest.raises(OverflowError):
        vramcache.caching_allocator_alloc(2**64 + 4096)
    with pytest.raises(OverflowError):
        vramcache.caching_allocator_alloc(MiB, device=2**32)
    with pytest.raises(OverflowError):
        vramcache.memory_allocated(2**32)
    with pytest.raises(OverflowError):
        vramcache.memory_allocated(f"cuda:{2**32}")
    with pytest.raises(OverflowError):
        vramcache.memory_allocated(types.SimpleNamespace(type="cuda", index=2**32))
    with pytest.raises(ValueError):
        vramcache.memory_allocated(-1)
    with pytest.raises(TypeError):
        vramcache.caching_allocator_alloc(4096.0)
    with pytest.raises(TypeError):
        vramcache.caching_allocator_alloc("4096")
    with pytest.raises(OverflowError):
        vramcache.caching_allocator_alloc(MiB, stream=2**64)
    with pytest.raises(TypeError):
        vramcache.caching_allocator_delete(1.5)
    with pytest.raises(OverflowError):
        vramcache.caching_allocator_delete(2**64)
    assert vramcache.memory_allocated() == 0
    assert python_stats()["allocation.all.allocated"] == 0


def test_per_process_memory_fraction_zero_lets_nothing_fit(sim):
    vramcache.set_per_process_memory_fraction(0.0)  # torch accepts 0.0
    with pytest.raises(vramcache.VramcacheError, match="out of memory"):
        vramcache.caching_allocator_alloc(512)
    vramcache.set_per_process_memory_fraction(1.0)
    vramcache.caching_allocator_delete(vramcache.caching_allocator_alloc(512))
    with pytest.raises(ValueError):
        vramcache.set_per_process_memory_fraction(-0.01)


def test_per_process_memory_fraction(sim):
    with pytest.raises(TypeError):
        vramcache.set_per_process_memory_fraction(1)
    with pytest.raises(ValueError):
        vramcache.set_per_process_memory_fraction(1.5)
    vramcache.set_per_process_memory_fraction(0.25)  # 64 MiB of 256
    assert python_stats()["budget_bytes"] == SIM_CAPACITY // 4
    ptr = vramcache.caching_allocator_alloc(40 * MiB)
    with pytest.raises(vramcache.VramcacheError, match="budget"):
        vramcache.caching_allocator_alloc(40 * MiB)
    report = vramcache.last_oom()
    assert report["verdict"] == "budget_reached"
    assert report["requested_bytes"] == 40 * MiB
    assert report["budget_bytes"] == SIM_CAPACITY // 4
    assert report["allocated_bytes"] == 40 * MiB
    assert python_stats()["num_ooms"] == 1
    vramcache.caching_allocator_delete(ptr)


def test_last_oom_none_before_any(sim):
    assert vramcache.last_oom() is None


def test_device_count(sim):
    assert vramcache.device_count() == 1


def test_record_stream_through_python(sim):
    ptr = vramcache.caching_allocator_alloc(MiB, stream=0)
    vramcache.record_stream(ptr, 0)
    with pytest.raises(vramcache.VramcacheError):
        vramcache.record_stream(ptr + 512, 0)
    with pytest.raises(TypeError):
        vramcache.record_stream(ptr, "stream")
    vramcache.caching_allocator_delete(ptr)


def test_stats_version_mismatch_is_reported(sim, monkeypatch):
    monkeypatch.setattr(vramcache.memory, "STATS_VERSION", 2)
    with pytest.raises(vramcache.VramcacheError, match="version 1"):
        vramcache.get_stats()


def test_stream_destroyed_makes_its_memory_wait(sim):
    ptr = vramcache.caching_allocator_alloc(3 * MiB, stream=0x10)
    vramcache.stream_destroyed(0x10)
    vramcache.caching_allocator_delete(ptr)
    stats = python_stats()
    # The block, freed after its stream was destroyed, waits for a device synchronization:
    # active (its data may still be in use). The segment's 17 MiB rest, cached for the dead
    # stream, also waits for its work but holds nobody's data: inactive, and split.
    assert stats["allocated_bytes.all.current"] == 0
    assert stats["active_bytes.all.current"] == 3 * MiB
    assert stats["inactive_split_bytes.all.current"] == 17 * MiB
    vramcache.empty_cache()
    stats = python_stats()
    assert stats["num_sync_all_streams"] == 1
    assert stats["active_bytes.all.current"] == 0 and stats["reserved_bytes.all.current"] == 0
    with pytest.raises(TypeError):
        vramcache.stream_destroyed("stream")
