"""snapshot() / dump_snapshot(): the layout torch.cuda.memory._snapshot() has and memory_viz
reads, consistent with the allocations made, and round-tripping through pickle."""

import pickle

import vramcache
from conftest import MiB

SEGMENT_KEYS = {"device", "address", "total_size", "allocated_size", "active_size",
                "requested_size", "stream", "segment_type", "blocks"}
BLOCK_KEYS = {"address", "size", "requested_size", "state"}
TRACE_KEYS = {"action", "addr", "size", "stream", "time_us", "frames"}


def segment_holding(snap, address):
    found = [s for s in snap["segments"]
             if s["address"] <= address < s["address"] + s["total_size"]]
    assert len(found) == 1, f"{address:#x} is in {len(found)} segments"
    return found[0]


def test_segments_and_blocks_match_allocations(sim):
    big = vramcache.caching_allocator_alloc(3 * MiB)
    small = vramcache.caching_allocator_alloc(1000)
    snap = vramcache.snapshot()
    assert set(snap) >= {"segments", "device_traces"}
    assert len(snap["segments"]) == 2
    for segment in snap["segments"]:
        assert SEGMENT_KEYS <= set(segment)
        assert segment["device"] == 0
        assert sum(b["size"] for b in segment["blocks"]) == segment["total_size"]
        for block in segment["blocks"]:
            assert BLOCK_KEYS <= set(block)

    large_segment = segment_holding(snap, big)
    assert large_segment["segment_type"] == "large"
    assert large_segment["total_size"] == 20 * MiB
    assert large_segment["allocated_size"] == 3 * MiB
    assert large_segment["requested_size"] == 3 * MiB
    assert large_segment["active_size"] == 3 * MiB
    blocks = large_segment["blocks"]
    assert [(b["address"], b["size"], b["state"]) for b in blocks] == [
        (big, 3 * MiB, "active_allocated"), (big + 3 * MiB, 17 * MiB, "inactive")]

    small_segment = segment_holding(snap, small)
    assert small_segment["segment_type"] == "small"
    assert small_segment["total_size"] == 2 * MiB
    allocated = [b for b in small_segment["blocks"] if b["state"] == "active_allocated"]
    assert [(b["address"], b["size"], b["requested_size"]) for b in allocated] == [
        (small, 1024, 1000)]

    total = sum(s["total_size"] for s in snap["segments"])
    assert total == vramcache.memory_reserved()
    assert sum(s["allocated_size"] for s in snap["segments"]) == vramcache.memory_allocated()
    vramcache.caching_allocator_delete(big)
    vramcache.caching_allocator_delete(small)
    assert all(b["state"] == "inactive" for s in vramcache.snapshot()["segments"]
               for b in s["blocks"])


def test_traces_record_the_history(sim_history):
    ptr = vramcache.caching_allocator_alloc(3 * MiB)
    vramcache.caching_allocator_delete(ptr)
    vramcache.empty_cache()
    traces = vramcache.snapshot()["device_traces"]
    assert len(traces) == 1  # one list per device
    entries = traces[0]
    for entry in entries:
        assert TRACE_KEYS <= set(entry)
        assert entry["frames"] == []
    assert [(e["action"], e["size"]) for e in entries] == [
        ("segment_alloc", 20 * MiB), ("alloc", 3 * MiB), ("free_requested", 3 * MiB),
        ("free_completed", 3 * MiB), ("segment_free", 20 * MiB)]
    assert all(e["addr"] == ptr for e in entries)
    times = [e["time_us"] for e in entries]
    assert times == sorted(times)


def test_traces_record_ooms(sim_history):
    try:
        vramcache.caching_allocator_alloc(1 << 40)
    except vramcache.VramcacheError:
        pass
    actions = [e["action"] for e in vramcache.snapshot()["device_traces"][0]]
    assert actions[-1] == "oom"


def test_no_history_unless_asked(sim):
    ptr = vramcache.caching_allocator_alloc(4096)
    assert vramcache.snapshot()["device_traces"] in ([], [[]])
    vramcache.caching_allocator_delete(ptr)


def test_dump_snapshot_round_trips_through_pickle(sim_history, tmp_path):
    ptrs = [vramcache.caching_allocator_alloc(n) for n in (512, 70000, 5 * MiB)]
    vramcache.caching_allocator_delete(ptrs[1])
    path = tmp_path / "snapshot.pickle"
    vramcache.dump_snapshot(str(path))
    with open(path, "rb") as f:
        loaded = pickle.load(f)
    assert loaded == vramcache.snapshot()
    assert len(loaded["device_traces"][0]) > 0
    for p in (ptrs[0], ptrs[2]):
        vramcache.caching_allocator_delete(p)
