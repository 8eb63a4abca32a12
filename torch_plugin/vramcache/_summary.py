"""memory_summary(): the table torch.cuda.memory_summary() prints, from vramcache's statistics.

Same rows, columns, widths and unit rules as PyTorch, so people who read PyTorch's summary read
this one; only the title names vramcache. Each column's unit is chosen from the `all` row, so
the pool rows beneath it use the same unit.
"""

from typing import Callable, List, Mapping

WIDTH = 75

_SIZE_UNITS = ("B  ", "KiB", "MiB", "GiB", "TiB", "PiB")
_SIZE_STEP, _SIZE_THRESHOLD = 1024, 768 * 1024
_COUNT_UNITS = (" ", "K", "M")
_COUNT_STEP, _COUNT_THRESHOLD = 1000, 750 * 1000

_POOL_METRICS = (
    ("allocated_bytes", "Allocated memory", "size"),
    ("active_bytes", "Active memory", "size"),
    ("requested_bytes", "Requested memory", "size"),
    ("reserved_bytes", "GPU reserved memory", "size"),
    ("inactive_split_bytes", "Non-releasable memory", "size"),
    ("allocation", "Allocations", "count"),
    ("active", "Active allocs", "count"),
    ("segment", "GPU reserved segments", "count"),
    ("inactive_split", "Non-releasable allocs", "count"),
)
_POOL_ROWS = (("all", None), ("large_pool", "      from large pool"),
              ("small_pool", "      from small pool"))
_SINGLE_METRICS = (
    ("oversize_allocations", "Oversize allocations"),
    ("oversize_segments", "Oversize GPU segments"),
)
_KINDS = ("current", "peak", "allocated", "freed")


def _scaled(value: int, reference: float, units, step: int, threshold: int):
    """Divides `value` by `step` once per unit for as long as `reference` stays large."""
    unit = units[0]
    for next_unit in units[1:]:
        if reference < threshold:
            break
        unit = next_unit
        value //= step
        reference /= step
    return value, unit


def format_size(value: int, reference: int) -> str:
    """A byte count in 10 characters, its unit chosen by `reference` (PyTorch's _format_size)."""
    scaled, unit = _scaled(value, reference, _SIZE_UNITS, _SIZE_STEP, _SIZE_THRESHOLD)
    return f"{scaled:6d} {unit}"


def format_count(value: int, reference: int) -> str:
    """A count in 10 characters, its unit chosen by `reference` (PyTorch's _format_count)."""
    scaled, unit = _scaled(value, reference, _COUNT_UNITS, _COUNT_STEP, _COUNT_THRESHOLD)
    return f"{scaled:7d} {unit} "


_FORMATTERS = {"size": format_size, "count": format_count}


def _row(label: str, values: List[int], references: List[int],
         formatter: Callable[[int, int], str]) -> str:
    cells = " | ".join(formatter(v, r) for v, r in zip(values, references))
    return f" {label:<21} | {cells} "


def format_summary(stats: Mapping[str, int], device: int, abbreviated: bool = False) -> str:
    """The summary table for flat `stats` (memory_stats() keys) of `device`."""
    lines = [
        "=" * WIDTH,
        f" {'':15} vramcache CUDA memory summary, device ID {device:<16d} ",
        "-" * WIDTH,
        f"  {'':9} CUDA OOMs: {stats['num_ooms']:<12d} | {'':6} cudaMalloc retries: "
        f"{stats['num_alloc_retries']:<8d}  ",
        "=" * WIDTH,
        "        Metric         | Cur Usage  | Peak Usage | Tot Alloc  | Tot Freed  ",
    ]
    for key, title, kind in _POOL_METRICS:
        lines.append("-" * WIDTH)
        formatter = _FORMATTERS[kind]
        references = [stats[f"{key}.all.{k}"] for k in _KINDS]
        rows = _POOL_ROWS[:1] if abbreviated else _POOL_ROWS
        for pool, label in rows:
            values = [stats[f"{key}.{pool}.{k}"] for k in _KINDS]
            lines.append(_row(label or title, values, references, formatter))
    for key, title in _SINGLE_METRICS:
        lines.append("-" * WIDTH)
        values = [stats[f"{key}.{k}"] for k in _KINDS]
        lines.append(_row(title, values, values, format_count))
    lines.append("=" * WIDTH)
    return "|" + "|\n|".join(lines) + "|\n"
