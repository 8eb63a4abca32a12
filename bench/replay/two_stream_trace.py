#!/usr/bin/env python3
"""Writes a synthetic two-stream allocation trace (RMM replay CSV) to standard output.

Forty phases alternate between streams 1 and 2; each allocates sixty tensors of typical sizes
on its stream and frees them. With no cross-stream reuse, each stream keeps its own cache and
memory roughly doubles; docs/tuning.md (cross_stream) quotes the replay of this trace.
"""
import random
import sys


def main() -> None:
    rng = random.Random(1)
    out = sys.stdout
    out.write("Thread,Time,Action,Pointer,Size,Stream\n")
    pointer, tick = 0x1000, 0
    for phase in range(40):
        stream = 1 + phase % 2
        live = []
        for _ in range(60):
            size = rng.choice([1 << 20, 3 << 20, 8 << 20, 24 << 20, 256 << 10, 4096])
            out.write(f"1,00:00:00.{tick:06d},allocate,{pointer:#x},{size},{stream}\n")
            live.append((pointer, size))
            pointer += 0x100
            tick += 1
        for address, size in live:
            out.write(f"1,00:00:00.{tick:06d},free,{address:#x},{size},{stream}\n")
            tick += 1


if __name__ == "__main__":
    main()
