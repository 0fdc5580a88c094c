"""Peak memory of one study x tier, measured in a child process.

``python -m dcmtier.bench.rss SRC OUT --tier T`` runs the unit of work on the study under SRC
and prints one JSON line with the child's own peak RSS (``getrusage(RUSAGE_SELF)``) and that of
its pool workers (``RUSAGE_CHILDREN``), so the figure excludes whatever the bench itself holds.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dcmtier.bench.timing import child_report

_KIB = 1024  # Linux reports ru_maxrss in KiB
_MB = 1e6


def measure_rss(src: Path, out: Path, *, tier: str, jobs: int) -> dict[str, Any]:
    """Run the child on ``src``; its report has peak RSS in MB (1e6 bytes) and wall seconds."""
    args = [str(src), str(out), "--tier", tier, "--jobs", str(jobs)]
    return child_report("dcmtier.bench.rss", args, failure=f"the RSS child failed on {src}")


def peak_rss(
    folder: Path,
    slice_counts: Sequence[int],
    *,
    size: int,
    tier: str,
    runs: int,
    echo: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Peak RSS of the unit of work on one generated study x ``tier`` at each slice count."""
    from dcmtier.sample import write_ct_series

    reports = []
    for slices in slice_counts:
        src = folder / f"{slices}-slices"
        echo(f"peak RSS: {slices} slices of {size}x{size}, {tier}")
        paths = write_ct_series(src, slices=slices, rows=size, columns=size)
        largest = max(p.stat().st_size for p in paths)
        measured = []
        for _ in range(runs):
            shutil.rmtree(folder / "out", ignore_errors=True)
            measured.append(measure_rss(src, folder / "out", tier=tier, jobs=1))
        reports.append(
            {"slices": slices, "size": size, "largest_instance_bytes": largest, "runs": measured}
        )
        shutil.rmtree(src, ignore_errors=True)
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dcmtier.bench.rss", description=__doc__)
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--tier", required=True)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)

    from dcmtier.bench.ours import run_unit
    from dcmtier.tiers import resolve_tiers

    run = run_unit(args.src, resolve_tiers([args.tier]), args.out, jobs=args.jobs, run_id="rss")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = {
        "tier": args.tier,
        "jobs": args.jobs,
        "instances": sum(run.outcome.statuses.values()),
        "statuses": dict(run.outcome.statuses),
        "wall_s": round(run.timing.wall_s, 3),
        "peak_rss_mb": round(own * _KIB / _MB, 1),
        "peak_rss_worker_mb": round(workers * _KIB / _MB, 1),
    }
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
