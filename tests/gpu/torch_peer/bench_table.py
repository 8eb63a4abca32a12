"""Side-by-side table of the GPU allocator peers, from the console output of vramcache-gpu-bench
(Google Benchmark) and torch-peer-bench (the same line format). Rows are scenarios, columns the
peers; the last column is PyTorch's time over vramcache's (above 1: vramcache is faster).

Usage: python3 tests/gpu/torch_peer/bench_table.py LOG...   (prints the table; nothing without
rows). Benchmark names are <scenario>/<peer>/<args...>; the scenario's key drops the peer.
"""

import re
import sys

PEERS = ("vramcache", "pytorch", "cudaMallocAsync", "cub")  # cudaMalloc: in bench.log only
UNITS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
LINE = re.compile(r"^(gpu_[A-Za-z_]+)/([A-Za-z]+)(/\S*)?\s+([0-9.]+) (ns|us|ms|s)\b")


def parse(paths):
    times = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
        except OSError:
            continue
        for line in lines:
            m = LINE.match(line)
            if not m or m.group(2) not in PEERS:
                continue
            scenario = m.group(1) + (m.group(3) or "")
            # Google Benchmark's aggregates (_median etc.) and plain runs: prefer the median.
            if scenario.endswith(("_mean", "_stddev", "_cv")):
                continue
            key = scenario.removesuffix("_median")
            value = float(m.group(4)) * UNITS[m.group(5)]
            if key not in times.get(m.group(2), {}) or scenario.endswith("_median"):
                times.setdefault(m.group(2), {})[key] = value
    return times


def short(scenario):
    s = scenario.replace("gpu_fast_path/", "same-stream ").replace("gpu_cross_stream/",
                                                                  "cross-stream ")
    s = s.replace("/real_time", "").replace("/threads:", " t").replace("/", " ")
    return s.replace("1048576", "1MiB").replace("4096", "4KiB")


def main(paths):
    times = parse(paths)
    scenarios = sorted({k for peer in times.values() for k in peer},
                       key=lambda k: (not k.startswith("gpu_fast_path"), len(k), k))
    if not scenarios:
        return 0
    columns = [p for p in PEERS if p in times]
    print(f"{'scenario (ns per pair)':<26}" + "".join(f"{p:>16}" for p in columns) +
          f"{'pytorch/vramcache':>19}")
    for key in scenarios:
        cells = []
        for peer in columns:
            value = times[peer].get(key)
            cells.append(f"{value:>16.1f}" if value is not None else f"{'-':>16}")
        ours, theirs = times.get("vramcache", {}).get(key), times.get("pytorch", {}).get(key)
        ratio = f"{theirs / ours:>19.2f}" if ours and theirs else f"{'-':>19}"
        print(f"{short(key):<26}" + "".join(cells) + ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
