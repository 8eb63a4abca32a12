"""The C ABI of allocator/api/vramcache.h called through ctypes, bad input included: every
failure sets vramcache_last_error, crashes nothing, and changes no statistic."""

import ctypes
import json

from conftest import SIM_CAPACITY, MiB, configure
from vramcache import _library
from vramcache._stats import STATS_VERSION, VramcacheStats, new_stats


def stats_of(lib, device=0) -> VramcacheStats:
    stats = new_stats()
    assert lib.vramcache_get_stats(device, ctypes.byref(stats)) == 0, _library.last_error()
    return stats


def error(lib) -> str:
    return lib.vramcache_last_error().decode()


def test_explicit_configuration_replaces_a_bad_environment(lib, monkeypatch):
    monkeypatch.setenv("VRAMCACHE_CONF", "budget:lots")
    assert lib.vramcache_configuration_status() == -1
    assert "VRAMCACHE_CONF: bad value" in error(lib)
    assert lib.vramcache_configure(b"") == -1  # no keys: the environment's, and its error
    assert "VRAMCACHE_CONF: bad value" in error(lib)
    configure(lib, "device:sim,sim_capacity:64MiB")  # replaces it: the process recovers
    assert lib.vramcache_configuration_status() == 0
    assert lib.vramcache_device_total_bytes(0) == 64 * MiB
    ptr = lib.vramcache_try_malloc(4096, 0, None)
    assert ptr, error(lib)
    lib.vramcache_free(ptr, 4096, 0, None)


def test_peer_access_names_both_devices(lib):
    configure(lib, "device:sim,sim_capacity:64MiB,sim_devices:2")
    assert lib.vramcache_device_count() == 2
    assert lib.vramcache_enable_peer_access(0, 1) == 0, error(lib)  # 0 may access 1's memory
    assert lib.vramcache_enable_peer_access(1, 1) == -1
    assert "two different devices" in error(lib)
    assert lib.vramcache_enable_peer_access(2, 0) == -1
    assert "device 2 does not exist" in error(lib)


def test_malloc_free_round_trip(sim):
    ptr = sim.vramcache_try_malloc(4096, 0, None)
    assert ptr, error(sim)
    assert error(sim) == ""
    assert stats_of(sim).allocated_bytes[0].current == 4096
    sim.vramcache_free(ptr, 4096, 0, None)
    assert error(sim) == ""
    assert stats_of(sim).allocated_bytes[0].current == 0


def test_throwing_malloc_succeeds_like_try_malloc(sim):
    # vramcache_malloc throws only on failure, which ctypes cannot catch: only success here.
    ptr = sim.vramcache_malloc(MiB, 0, None)
    assert ptr and error(sim) == ""
    sim.vramcache_free(ptr, MiB, 0, None)
    assert error(sim) == ""


def test_size_zero_returns_null_without_error(sim):
    assert sim.vramcache_try_malloc(0, 0, None) is None
    assert error(sim) == ""
    assert sim.vramcache_malloc(0, 0, None) is None
    assert stats_of(sim).allocation[0].allocated == 0


def test_free_null_is_a_no_op(sim):
    sim.vramcache_free(None, 0, 0, None)
    assert error(sim) == ""


def test_free_of_unknown_pointer_fails_and_changes_nothing(sim):
    ptr = sim.vramcache_try_malloc(1000, 0, None)
    before = stats_of(sim).to_dict()
    sim.vramcache_free(ptr + 512, 0, 0, None)  # inside a block, not its start
    assert "free" in error(sim)
    sim.vramcache_free(0xDEAD0000, 0, 0, None)
    assert error(sim) != ""
    assert stats_of(sim).to_dict() == before
    sim.vramcache_free(ptr, 0, 0, None)
    assert error(sim) == ""


def test_double_free_fails_and_changes_nothing(sim):
    ptr = sim.vramcache_try_malloc(3 * MiB, 0, None)
    sim.vramcache_free(ptr, 0, 0, None)
    after_first = stats_of(sim).to_dict()
    sim.vramcache_free(ptr, 0, 0, None)
    assert error(sim) != ""
    assert stats_of(sim).to_dict() == after_first


def test_errors_are_cleared_by_the_next_successful_call(sim):
    sim.vramcache_free(0x1000, 0, 0, None)
    assert error(sim) != ""
    ptr = sim.vramcache_try_malloc(512, 0, None)
    assert error(sim) == ""
    sim.vramcache_free(ptr, 0, 0, None)


def test_device_that_does_not_exist(sim):
    assert sim.vramcache_device_count() == 1
    assert sim.vramcache_try_malloc(512, 1, None) is None
    assert "device 1 does not exist" in error(sim)
    assert sim.vramcache_try_malloc(512, -1, None) is None
    assert error(sim) != ""
    sim.vramcache_free(0x1000, 0, 7, None)
    assert "device 7" in error(sim)
    assert sim.vramcache_stats_json(3) is None and error(sim) != ""
    assert sim.vramcache_last_oom_json(3) is None and error(sim) != ""
    assert sim.vramcache_reset_peak_stats(3) == -1 and error(sim) != ""
    assert sim.vramcache_reset_accumulated_stats(3) == -1 and error(sim) != ""
    assert sim.vramcache_set_memory_fraction(0.5, 3) == -1 and error(sim) != ""
    assert sim.vramcache_get_stats(3, ctypes.byref(new_stats())) == -1 and error(sim) != ""


def test_absurd_size_is_rejected_not_reported_as_oom(sim):
    assert sim.vramcache_try_malloc(2**63, 0, None) is None
    assert "larger than any device" in error(sim)
    assert stats_of(sim).num_ooms == 0


def test_out_of_memory_returns_null_with_report(sim):
    assert sim.vramcache_try_malloc(2 * SIM_CAPACITY, 0, None) is None
    message = error(sim)
    assert "out of memory" in message and "Verdict" in message
    assert stats_of(sim).num_ooms == 1
    report = json.loads(sim.vramcache_last_oom_json(0))
    assert report["requested_bytes"] == 2 * SIM_CAPACITY
    assert report["device_total_bytes"] == SIM_CAPACITY


def test_last_oom_is_null_before_any(sim):
    assert sim.vramcache_last_oom_json(0) == b"null"


def test_get_stats_versioned_struct(sim):
    stats = stats_of(sim)
    assert stats.version == STATS_VERSION
    assert stats.struct_size == ctypes.sizeof(VramcacheStats)


def test_get_stats_fills_only_the_prefix_an_older_caller_knows(sim):
    ptr = sim.vramcache_try_malloc(512, 0, None)

    class OldStats(ctypes.Structure):  # a caller that knew the header and one counter
        _fields_ = [("struct_size", ctypes.c_uint64), ("version", ctypes.c_uint64),
                    ("allocation", ctypes.c_int64 * 4), ("guard", ctypes.c_int64)]

    old = OldStats()
    old.struct_size = 16 + 32
    old.guard = 12345
    assert sim.vramcache_get_stats(0, ctypes.cast(ctypes.byref(old),
                                                  ctypes.POINTER(VramcacheStats))) == 0
    assert old.struct_size == 48 and old.version == STATS_VERSION
    assert list(old.allocation) == [1, 1, 1, 0]  # allocation.all: current, peak, alloc, freed
    assert old.guard == 12345
    sim.vramcache_free(ptr, 0, 0, None)


def test_get_stats_bad_input(sim):
    assert sim.vramcache_get_stats(0, None) == -1
    assert "NULL" in error(sim)
    tiny = new_stats()
    tiny.struct_size = 8
    assert sim.vramcache_get_stats(0, ctypes.byref(tiny)) == -1
    assert "struct_size" in error(sim)


def test_record_stream_unknown_pointer(sim):
    assert sim.vramcache_record_stream(0x1234, None) == -1
    assert "record_stream" in error(sim)


def test_record_stream_on_own_stream(sim):
    ptr = sim.vramcache_try_malloc(512, 0, None)
    assert sim.vramcache_record_stream(ptr, None) == 0, error(sim)
    sim.vramcache_free(ptr, 0, 0, None)
    assert error(sim) == ""


def test_memory_fraction_bounds(sim):
    for bad in (-0.5, 1.5, float("nan")):
        assert sim.vramcache_set_memory_fraction(bad, 0) == -1
        assert "outside [0, 1]" in error(sim)
    assert stats_of(sim).budget_bytes == 0
    assert sim.vramcache_set_memory_fraction(0.0, 0) == 0, error(sim)  # as torch: nothing fits
    assert sim.vramcache_try_malloc(512, 0, None) is None
    assert "out of memory" in error(sim)
    assert sim.vramcache_set_memory_fraction(0.25, 0) == 0, error(sim)
    assert stats_of(sim).budget_bytes == SIM_CAPACITY // 4


def test_configure_bad_input(lib):
    assert lib.vramcache_configure(None) == -1
    assert "NULL" in error(lib)
    assert lib.vramcache_configure(b"no_such_key:1") == -1
    assert "no_such_key" in error(lib)


def test_configure_after_first_allocation_is_refused(sim):
    ptr = sim.vramcache_try_malloc(512, 0, None)
    assert sim.vramcache_configure(b"device:sim") == -1
    assert "before the first allocation" in error(sim)
    sim.vramcache_free(ptr, 0, 0, None)


def test_empty_cache_returns_free_segments(sim):
    ptr = sim.vramcache_try_malloc(3 * MiB, 0, None)
    sim.vramcache_free(ptr, 0, 0, None)
    assert stats_of(sim).reserved_bytes[0].current == 20 * MiB
    assert sim.vramcache_empty_cache() == 0, error(sim)
    assert stats_of(sim).reserved_bytes[0].current == 0


def test_shutdown_then_fresh_start(lib):
    configure(lib, "device:sim,sim_capacity:64MiB")
    assert lib.vramcache_try_malloc(MiB, 0, None)
    assert lib.vramcache_shutdown() == 0
    configure(lib, "device:sim,sim_capacity:32MiB")
    assert stats_of(lib).allocation[0].current == 0
    assert lib.vramcache_try_malloc(64 * MiB, 0, None) is None  # the new capacity applies


def test_snapshot_json_is_valid_json(sim):
    data = json.loads(sim.vramcache_snapshot_json())
    assert data["segments"] == []
    assert isinstance(data["device_traces"], list)
