"""memory_summary(): torch.cuda.memory_summary()'s layout (75 columns between pipes, the same
rows, PyTorch's unit rules) with vramcache's numbers. Expected lines are written out by hand."""

import vramcache
from conftest import SIM_CAPACITY, MiB
from vramcache._summary import format_count, format_size

import pytest


def test_size_units_follow_the_reference_value():
    assert format_size(0, 0) == "     0 B  "
    assert format_size(1023, 1023) == "  1023 B  "
    assert format_size(786431, 786431) == "786431 B  "  # just under 768 KiB: still bytes
    assert format_size(786432, 786432) == "   768 KiB"
    assert format_size(3 * MiB, 3 * MiB) == "  3072 KiB"
    assert format_size(768 * MiB, 768 * MiB) == "   768 MiB"
    assert format_size(5 << 30, 5 << 30) == "  5120 MiB"
    assert format_size(800 << 30, 800 << 30) == "   800 GiB"
    # A pool row takes its unit from the `all` row above it.
    assert format_size(512, 3 * MiB) == "     0 KiB"
    assert format_size(3 * MiB, 512) == "3145728 B  "


def test_count_units_follow_the_reference_value():
    assert format_count(0, 0) == "      0   "
    assert format_count(749999, 749999) == " 749999   "
    assert format_count(750000, 750000) == "    750 K "
    assert format_count(2_000_000, 2_000_000) == "   2000 K "
    assert format_count(900_000_000, 900_000_000) == "    900 M "
    assert format_count(5, 2_000_000) == "      0 K "


@pytest.fixture
def summary_state(sim):
    """One OOM, then c = 3 MiB (20 MiB segment) and a = 1000 B (2 MiB segment), a freed."""
    with pytest.raises(vramcache.VramcacheError):
        vramcache.caching_allocator_alloc(SIM_CAPACITY + MiB)
    c = vramcache.caching_allocator_alloc(3 * MiB)
    a = vramcache.caching_allocator_alloc(1000)
    vramcache.caching_allocator_delete(a)
    yield
    vramcache.caching_allocator_delete(c)


EXPECTED_FULL = """\
|===========================================================================|
|                 vramcache CUDA memory summary, device ID 0                |
|---------------------------------------------------------------------------|
|            CUDA OOMs: 1            |        cudaMalloc retries: 0         |
|===========================================================================|
|        Metric         | Cur Usage  | Peak Usage | Tot Alloc  | Tot Freed  |
|---------------------------------------------------------------------------|
| Allocated memory      |   3072 KiB |   3073 KiB |   3073 KiB |   1024 B   |
|       from large pool |   3072 KiB |   3072 KiB |   3072 KiB |      0 B   |
|       from small pool |      0 KiB |      1 KiB |      1 KiB |   1024 B   |
|---------------------------------------------------------------------------|
| Active memory         |   3072 KiB |   3073 KiB |   3073 KiB |   1024 B   |
|       from large pool |   3072 KiB |   3072 KiB |   3072 KiB |      0 B   |
|       from small pool |      0 KiB |      1 KiB |      1 KiB |   1024 B   |
|---------------------------------------------------------------------------|
| Requested memory      |   3072 KiB |   3072 KiB |   3072 KiB |   1000 B   |
|       from large pool |   3072 KiB |   3072 KiB |   3072 KiB |      0 B   |
|       from small pool |      0 KiB |      0 KiB |      0 KiB |   1000 B   |
|---------------------------------------------------------------------------|
| GPU reserved memory   |  22528 KiB |  22528 KiB |  22528 KiB |      0 B   |
|       from large pool |  20480 KiB |  20480 KiB |  20480 KiB |      0 B   |
|       from small pool |   2048 KiB |   2048 KiB |   2048 KiB |      0 B   |
|---------------------------------------------------------------------------|
"""

EXPECTED_COUNTS = """\
| Allocations           |       1    |       2    |       2    |       1    |
|       from large pool |       1    |       1    |       1    |       0    |
|       from small pool |       0    |       1    |       1    |       1    |
|---------------------------------------------------------------------------|
| Active allocs         |       1    |       2    |       2    |       1    |
|       from large pool |       1    |       1    |       1    |       0    |
|       from small pool |       0    |       1    |       1    |       1    |
|---------------------------------------------------------------------------|
| GPU reserved segments |       2    |       2    |       2    |       0    |
|       from large pool |       1    |       1    |       1    |       0    |
|       from small pool |       1    |       1    |       1    |       0    |
|---------------------------------------------------------------------------|
"""

EXPECTED_TAIL = """\
|---------------------------------------------------------------------------|
| Oversize allocations  |       0    |       0    |       0    |       0    |
|---------------------------------------------------------------------------|
| Oversize GPU segments |       0    |       0    |       0    |       0    |
|===========================================================================|
"""


def test_full_summary(summary_state):
    text = vramcache.memory_summary()
    assert text.startswith(EXPECTED_FULL)
    assert EXPECTED_COUNTS in text
    assert text.endswith(EXPECTED_TAIL)
    lines = text.splitlines()
    assert len(lines) == 6 + 9 * 4 + 2 * 2 + 1
    assert all(len(line) == 77 and line[0] == line[-1] == "|" for line in lines)
    # Non-releasable memory: c's 17 MiB remainder, and a's segment (a's freed block waits whole in
    # the reuse cache, so the segment stays split in two).
    non_releasable = [line for line in lines if line.startswith("| Non-releasable memory")]
    assert non_releasable == [
        "| Non-releasable memory |  19456 KiB |  19456 KiB |  19456 KiB |      0 B   |"]


def test_abbreviated_summary(summary_state):
    text = vramcache.memory_summary(device=0, abbreviated=True)
    lines = text.splitlines()
    assert len(lines) == 6 + 9 * 2 + 2 * 2 + 1
    assert not any("from large pool" in line or "from small pool" in line for line in lines)
    assert "| Allocated memory      |   3072 KiB |   3073 KiB |   3073 KiB |   1024 B   |" in lines
    assert "| Allocations           |       1    |       2    |       2    |       1    |" in lines
    assert text.endswith(EXPECTED_TAIL)


def test_summary_of_a_missing_device(sim):
    with pytest.raises(vramcache.VramcacheError, match="does not exist"):
        vramcache.memory_summary(device=2)
