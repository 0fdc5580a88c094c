"""Three ``dcmtier process`` runs at once on one output: no traceback, and each study x tier
made once (the other runs wait for its hold, then find it made meanwhile)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from dcmtier.packaging.package import verify_package
from tests.faults.support import (
    SLICES,
    TIERS,
    assert_each_pair_done_once,
    process_args,
    start,
    temps,
    wait_for,
)


def _three_runs(
    landing: Path, out: Path, catalogue: str | None, marker: Path
) -> list[tuple[int, str, str]]:
    """Three runs that overlap for sure: the first stops inside its first study x tier until
    the other two have started (a run redoes what finished before it started)."""
    args = process_args(landing, out, catalogue)
    first = start(args, pause_at="compress", marker=marker)
    wait_for(marker, first)
    others = [start(args) for _ in range(2)]
    time.sleep(25)  # their start-up (imports, discovery): 8 s was not enough on a loaded machine
    marker.unlink()
    return [(r.wait(timeout=300), *r.communicate()) for r in (first, *others)]


def test_three_runs_on_postgresql_make_each_study_tier_once(
    pg_url: str, landing: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ended = _three_runs(landing, out, pg_url, tmp_path / "paused")

    assert [code for code, _, _ in ended] == [0, 0, 0], ended
    assert not [err for _, _, err in ended if "Traceback" in err]
    assert_each_pair_done_once(pg_url, out, landing)
    meanwhile = sum(stdout.count("made meanwhile by") for _, stdout, _ in ended)
    assert meanwhile == 2 * len(SLICES) * len(TIERS)  # two of three runs found each pair made


def test_three_runs_on_a_new_embedded_catalogue_create_it_once_and_never_crash(
    landing: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ended = _three_runs(landing, out, None, tmp_path / "paused")

    assert [code for code, _, _ in ended] == [0, 0, 0], ended
    assert not [err for _, _, err in ended if "Traceback" in err]
    assert temps(out) == []
    with sqlite3.connect(out / "catalogue.db") as db:
        statuses = db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
    assert statuses == [("ok", len(SLICES) * len(TIERS))]
    for package in (out / "packages").rglob("*.zip"):
        verify_package(package)
