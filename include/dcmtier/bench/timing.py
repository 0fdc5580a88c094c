"""Clocks, summaries and machine facts for ``dcmtier bench``.

A measurement is wall time and CPU time (user + system of this process and of every child it
has waited for: pool workers, gdcmconv processes). Per-core figures come from one process at a
time; the CPU times are recorded beside them so that a run slowed by other work on a shared
machine can be recognised.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcmtier.errors import ConfigError

MB = 1e6  # throughput is in MB/s of stored pixel bytes, MB = 10^6 bytes


@dataclass
class Timing:
    """Wall and CPU seconds of one measured step (filled when its ``clock`` block ends)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0


def cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@contextmanager
def clock() -> Iterator[Timing]:
    """Measure the block: wall time, and CPU time of this process and its waited-for children."""
    timing = Timing()
    wall, cpu = time.perf_counter(), cpu_seconds()
    yield timing
    timing.wall_s = time.perf_counter() - wall
    timing.cpu_s = cpu_seconds() - cpu


def summary(values: Sequence[float], digits: int = 5) -> dict[str, Any]:
    """``{"min", "median", "max", "runs"}`` of one figure over the runs (``digits`` significant)."""
    if not values:
        return {"min": None, "median": None, "max": None, "runs": []}

    def fit(value: float) -> float:
        return float(f"{value:.{digits}g}")

    return {
        "min": fit(min(values)),
        "median": fit(statistics.median(values)),
        "max": fit(max(values)),
        "runs": [fit(v) for v in values],
    }


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_counters() -> dict[str, int]:
    """Aggregate CPU jiffies from /proc/stat (empty off Linux): to report steal and busy time."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return {}
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {name: int(value) for name, value in zip(names, fields, strict=False)}


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if _has_sysconf() else 0
    return {
        "hostname": platform.node(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gb": round(memory / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def _has_sysconf() -> bool:
    try:
        return os.sysconf("SC_PAGE_SIZE") > 0 and os.sysconf("SC_PHYS_PAGES") > 0
    except (ValueError, OSError, AttributeError):
        return False


def contention(start: dict[str, int], end: dict[str, int], own_cpu_s: float) -> dict[str, Any]:
    """How busy the machine was during the bench, and how much of that was the bench itself.

    ``other_busy_pct`` is CPU time spent by other work (other users, the hypervisor's steal)
    as a share of all CPU time available; a high value means the wall times are inflated.
    """
    if not start or not end:
        return {"measured": False}
    delta = {k: end[k] - start.get(k, 0) for k in end}
    total = sum(delta.values())
    if total <= 0:
        return {"measured": False}
    hz = os.sysconf("SC_CLK_TCK")
    busy = total - delta.get("idle", 0) - delta.get("iowait", 0)
    other = max(0.0, busy / hz - own_cpu_s)
    return {
        "measured": True,
        "steal_pct": round(100 * delta.get("steal", 0) / total, 2),
        "busy_pct": round(100 * busy / total, 2),
        "other_busy_pct": round(100 * other * hz / total, 2),
        "load_average_at_end": list(os.getloadavg()),
    }


def spread(values: Sequence[float]) -> dict[str, Any]:
    """``{"min", "median", "max"}`` of values that are not runs (per file, per instance)."""
    if not values:
        return {"min": None, "median": None, "max": None}
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def target_row(
    name: str,
    value: float | None,
    limit: float,
    *,
    at_most: bool = False,
    absolute: bool = False,
    met: bool | None = None,
    bound: float | None = None,
) -> dict[str, Any]:
    """One row of the targets table: met when ``value`` (or ``|value|``) is within ``limit``.

    ``met`` overrides the comparison where the verdict is not the value's (e.g. every file).
    ``bound`` is the best value reachable at all, where the run measured one (a ratio with
    everything but the codec libraries' own time taken away).
    """
    judged = None if value is None else abs(value) if absolute else value
    if met is None:
        met = judged is not None and (judged <= limit if at_most else judged >= limit)
    row = {"target": name, "value": value, "limit": limit, "at_most": at_most, "met": met}
    return row if bound is None else {**row, "bound": bound}


def child_report(
    module: str, args: Sequence[str], *, failure: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON report on its last line of output.

    A child that fails raises ``ConfigError`` with ``failure`` and the end of its stderr.
    """
    command = [sys.executable, "-m", module, *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"{failure}: {done.stderr.strip()[-800:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@dataclass
class Figures:
    """Every measured value, one per run, under a ``/``-separated path."""

    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ratios: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # tier -> per file
    notes: dict[str, str] = field(default_factory=dict)
    # strategy -> the J2K rate outputs of its first all-cores unit-of-work run (issue #7)
    j2k_rate_outputs: dict[str, dict[tuple[str, str], tuple[int, float]]] = field(
        default_factory=dict
    )

    def timing(self, path: str, timing: Timing, stored_bytes: int) -> None:
        self.values[f"{path}/wall_s"].append(timing.wall_s)
        self.values[f"{path}/cpu_s"].append(timing.cpu_s)
        self.values[f"{path}/mb_s"].append(stored_bytes / MB / timing.wall_s)
        self.values[f"{path}/mb_per_cpu_s"].append(stored_bytes / MB / max(timing.cpu_s, 1e-9))

    def first_ratios(self, key: str, ratios: dict[str, list[float]]) -> None:
        for tier, values in ratios.items():
            self.ratios.setdefault(key, {}).setdefault(tier, list(values))
