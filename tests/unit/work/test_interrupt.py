"""SIGINT and SIGTERM stop ``dcmtier process`` with one line; its attempts say ``interrupted``."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from tests.faults.support import process_args, start, temps, wait_for


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_marks_the_attempts_interrupted_and_exits_with_one_line(
    small_landing: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    out, marker = tmp_path / "out", tmp_path / "paused"
    run = start(process_args(small_landing, out, None), pause_at="compress", marker=marker)
    wait_for(marker, run)

    run.send_signal(signum)
    _, err = run.communicate(timeout=60)

    assert run.returncode == 128 + signum
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("dcmtier:")] == [
        f"dcmtier: interrupted by {signum.name}: the unfinished study x tier attempts are "
        "marked interrupted; run the same command again to make them"
    ]
    with sqlite3.connect(out / "catalogue.db") as db:
        statuses = db.execute("SELECT status, error FROM jobs").fetchall()
        listed = db.execute("SELECT status FROM failures").fetchall()
    assert statuses and set(statuses) == {("interrupted", f"interrupted by {signum.name}")}
    assert {s for (s,) in listed} == {"interrupted"}
    assert temps(out) == []
