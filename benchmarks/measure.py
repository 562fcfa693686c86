"""What the benchmarks measure with: timers, SQL and backend-call counters, peak memory, the table."""

from __future__ import annotations

import functools
import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection


class QueryCounter:
    """Counts every SQL statement run on the default connection inside the block."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)

    def __enter__(self):
        self._cm = connection.execute_wrapper(self)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)

    def __len__(self):
        return self.count


# The driver interface's calls that reach a backend (image_refusal and supports answer locally).
_LOCAL = {"image_refusal", "supports"}
BACKEND_CALLS = {"n": 0}


def count_backend_calls() -> None:
    """Count every backend call of the sim driver (the benchmark's one backend) in ``BACKEND_CALLS``."""
    from instances.drivers.base import ComputeDriver
    from instances.drivers.sim.driver import SimDriver

    def counted(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            BACKEND_CALLS["n"] += 1
            return fn(*args, **kwargs)

        return wrapper

    # A call the driver makes to itself (create looks with find, then get) counts too.
    for name, member in vars(ComputeDriver).items():
        if callable(member) and not name.startswith("_") and name not in _LOCAL:
            setattr(SimDriver, name, counted(getattr(SimDriver, name)))


def ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def interleaved(
    figure: Callable, floor: Callable | None, samples: int, *, warm_up: bool = True
) -> tuple[list[float], list[float]]:
    """Milliseconds of ``figure`` and of ``floor``, taken in turns so that both see the same machine;
    one untimed warm-up of each first (unless the caller warmed them up already)."""
    if warm_up:
        figure()
        if floor:
            floor()
    gc.collect()
    times, floors = [], []
    for _ in range(samples):
        if floor:
            floors.append(ms(floor))
        times.append(ms(figure))
    return times, floors


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else math.nan


# --- peak memory (Linux) -------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the highest resident set size since the process started or since ``reset_peak``."""
    return _status_kb(pid, "VmHWM") / 1024


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def reset_peak(pid: int) -> None:
    """Set VmHWM back to the current RSS (``/proc/<pid>/clear_refs``, Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


# --- the table -----------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a figure at each scale, its floor at each scale, and the target.

    ``kind`` says how the target reads: ``max_ratio`` (figure / floor at most ``target``),
    ``min_ratio`` (figure / floor at least ``target``: throughput), ``own`` (the figure at the large
    scale within ``target`` times its own at the small scale), ``limit`` (the figure at most ``target``).
    """

    section: str
    name: str
    kind: str
    target: float | None
    unit: str = "ms"
    values: dict[int, float] = field(default_factory=dict)
    floors: dict[int, float] = field(default_factory=dict)
    # What else is worth knowing (SQL statements, backend calls, …): name → scale → text.
    notes: dict[str, dict[int, str]] = field(default_factory=dict)
    floor_name: str = ""
    proposed: bool = False  # a target this benchmark proposes, not one the issue sets
    # Whether a bigger figure costs more (ms, MB) or is better (per second): the exponent is of the cost.
    higher_is_better: bool = False


def _fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "ms":
        return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:,.2f} {unit}"


def _scale(n: int) -> str:
    return f"{n:,}"


NOTE_FORMATS = {"sql": "{} SQL", "calls": "{} backend calls"}


def _note(name: str, by_scale: dict[int, str], scales: tuple[int, int]) -> str:
    """One note: its value once when both scales agree, else small → large."""
    texts = [by_scale[n] for n in scales if n in by_scale]
    text = texts[0] if len(set(texts)) == 1 else " → ".join(texts)
    return NOTE_FORMATS.get(name, "{}").format(text)


def render(rows: list[Row], scales: tuple[int, int]) -> str:
    small, large = scales
    header = [
        "figure",
        _scale(small),
        _scale(large),
        "floor",
        "ratio",
        "target",
        "met",
        "exponent",
        "notes",
    ]
    lines = []
    for row in rows:
        v_small, v_large = row.values.get(small), row.values.get(large)
        floor = row.values.get(small) if row.kind == "own" else row.floors.get(large)
        ratio = v_large / floor if v_large is not None and floor else None
        target, met = "-", "-"
        if row.target is not None and ratio is not None:
            mark = "*" if row.proposed else ""
            if row.kind == "min_ratio":
                target, ok = f"≥ {row.target:.0%}{mark}", ratio >= row.target
            elif row.kind == "limit":
                target, ok = f"≤ {row.target:.0f} {row.unit}{mark}", v_large <= row.target
            else:
                target, ok = f"≤ {row.target:g}x{mark}", ratio <= row.target
            met = "yes" if ok else "**no**"
        if ratio is None:
            ratio_text = "-"
        elif row.kind == "min_ratio":
            ratio_text = f"{ratio:.0%}"
        else:
            ratio_text = f"{ratio:.2f}x"
        exponent = "-"
        if v_small and v_large:
            cost_small, cost_large = (1 / v_small, 1 / v_large) if row.higher_is_better else (v_small, v_large)
            exponent = f"{math.log(cost_large / cost_small) / math.log(large / small):+.2f}"
        floor_text = _fmt(floor, row.unit)
        if row.floor_name:
            floor_text = f"{floor_text} ({row.floor_name})" if floor is not None else row.floor_name
        notes = ", ".join(_note(name, by_scale, scales) for name, by_scale in row.notes.items())
        lines.append(
            [
                f"{row.section}: {row.name}",
                _fmt(v_small, row.unit),
                _fmt(v_large, row.unit),
                floor_text,
                ratio_text,
                target,
                met,
                exponent,
                notes,
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt_line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt_line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt_line(line) for line in lines]
    return "\n".join(out)
