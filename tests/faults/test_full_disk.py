"""A full disk under the output: a small tmpfs the test mounts (as root). One line, no
traceback, no half-written file, no attempt left running."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcmtier.packaging.package import verify_package
from dcmtier.sample import write_ct_series
from tests.faults.support import jobs, process_args, temps
from tests.support import skip_or_fail


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        skip_or_fail(f"cannot mount a small tmpfs: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_ends_the_run_with_one_line_and_leaves_nothing_half_written(
    small_disk: Path, pg_url: str, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_ct_series(landing, slices=8, rows=128, columns=128, seed=3)
    out = small_disk / "out"

    run = subprocess.run(
        process_args(landing, out, pg_url), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip

    assert run.returncode == 1
    assert "Traceback" not in run.stderr, run.stderr
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("dcmtier:")]
    assert line.startswith("dcmtier: ") and "No space left on device" in line, line
    assert temps(out) == []
    for package in out.rglob("*.zip"):
        verify_package(package)  # whole, or not there
    rows = jobs(pg_url)
    assert rows and not [r for r in rows if r["status"] == "running"]
    assert {r["status"] for r in rows} <= {"ok", "failed"}
    assert any("No space left on device" in (r["error"] or "") for r in rows)
