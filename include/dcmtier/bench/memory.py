"""Peak RSS of ``dcmtier process`` against the size of one multi-frame instance (issue #33).

``python -m dcmtier.bench.memory DIR`` writes each case's instance under DIR
(`dcmtier.bench.multiframe`), runs ``dcmtier process`` on it in a child process and reads
that child's own peak resident memory from the kernel (``os.wait4``'s ``ru_maxrss``, what
``/usr/bin/time -v`` prints), then prints one JSON line per case and a Markdown table. The
baseline of a geometry is its one-frame case: the interpreter, the libraries and the codecs,
which every worker holds whatever it makes. The table says what the instance adds above that,
and that as a multiple of its pixel data. The instances are deleted after their case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcmtier.bench.multiframe import write_multiframe

_KIB = 1024  # Linux reports ru_maxrss in KiB
_MB = 1e6


@dataclass(frozen=True)
class Case:
    """One instance: ``frames`` of ``rows`` x ``columns``, 16 bits allocated."""

    name: str
    frames: int
    rows: int = 512
    columns: int = 512
    bits_stored: int = 12
    tomo: bool = False

    @property
    def geometry(self) -> tuple[int, int, int, bool]:
        return (self.rows, self.columns, self.bits_stored, self.tomo)


CINE = [Case("cine", n) for n in (1, 300, 1000)]
TOMO = [Case("tomo", n, 2457, 1996, 14, tomo=True) for n in (1, 70)]
TOMO_LARGE = Case("tomo", 240, 2457, 1996, 14, tomo=True)  # 2.35 GB of pixel data
DEFAULT_TIERS = ("htj2k-lossless", "j2k-r20")


def process_rss(src: Path, out: Path, tiers: Sequence[str], *strategy: str) -> dict[str, Any]:
    """Run ``dcmtier process`` on ``src``; its peak RSS in bytes, wall seconds and results."""
    command = [sys.executable, "-m", "dcmtier.cli", "process", str(src), "--out", str(out),
               "--jobs", "1", "--json", *strategy]  # fmt: skip
    for tier in tiers:
        command += ["--tier", tier]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    lines = child.stdout.read().decode().splitlines()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    results = [json.loads(line) for line in lines if line.startswith("{")]
    return {
        "rc": child.returncode,
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_bytes": usage.ru_maxrss * _KIB,
        "statuses": {r.get("tier"): r.get("status") for r in results},
        "reported_peak_rss_bytes": max((r.get("peak_rss_bytes") or 0 for r in results), default=0),
    }


def measure(
    folder: Path, cases: Sequence[Case], tiers: Sequence[str], echo: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Each case's instance written, processed and deleted; one report per case."""
    reports = []
    for case in cases:
        src = folder / f"{case.name}-{case.frames}"
        pixel_bytes = write_multiframe(
            src / "instance.dcm", frames=case.frames, rows=case.rows, columns=case.columns,
            bits_stored=case.bits_stored, tomo=case.tomo,
        )  # fmt: skip
        echo(f"{case.name}: {case.frames} frames of {case.rows}x{case.columns}, "
             f"{pixel_bytes / _MB:.0f} MB of pixel data")  # fmt: skip
        report = process_rss(src, folder / "out", tiers)
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(folder / "out", ignore_errors=True)
        reports.append({**case.__dict__, "pixel_bytes": pixel_bytes, "tiers": list(tiers),
                        **report})  # fmt: skip
        echo(json.dumps(reports[-1], sort_keys=True))
    return reports


def table(reports: Sequence[dict[str, Any]]) -> str:
    """Markdown: each case's peak RSS, what it adds above its geometry's one-frame case, and
    that as a multiple of its pixel data."""
    baselines = {
        (r["rows"], r["columns"], r["bits_stored"], r["tomo"]): r["peak_rss_bytes"]
        for r in reports
        if r["frames"] == 1
    }
    lines = [
        "| instance | frames | pixel data (MB) | peak RSS (MB) | above baseline (MB) "
        "| x pixel data |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        base = baselines.get((r["rows"], r["columns"], r["bits_stored"], r["tomo"]))
        above = None if base is None else r["peak_rss_bytes"] - base
        ratio = "" if above is None or r["frames"] == 1 else f"{above / r['pixel_bytes']:.2f}"
        lines.append(
            f"| {r['name']} {r['rows']}x{r['columns']} | {r['frames']} | "
            f"{r['pixel_bytes'] / _MB:.0f} | {r['peak_rss_bytes'] / _MB:.0f} | "
            f"{'' if above is None else f'{above / _MB:.0f}'} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dcmtier.bench.memory", description=__doc__)
    parser.add_argument("folder", type=Path, help="where the instances are written (needs space)")
    parser.add_argument("--tier", action="append", dest="tiers", metavar="NAME")
    parser.add_argument("--cases", choices=("cine", "tomo", "all"), default="all")
    parser.add_argument("--large", action="store_true", help="also a 2.35 GB tomosynthesis")
    args = parser.parse_args(argv)
    cases = {"cine": CINE, "tomo": TOMO, "all": CINE + TOMO}[args.cases]
    if args.large:
        cases = [*cases, TOMO_LARGE]
    echo = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    reports = measure(args.folder, cases, args.tiers or DEFAULT_TIERS, echo)
    print(table(reports))
    return 0 if all(r["rc"] == 0 for r in reports) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
