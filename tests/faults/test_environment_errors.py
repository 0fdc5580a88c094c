"""User and environment errors end as one line on stderr with a documented exit code, never a
traceback: 2 for usage, 1 when the environment stops the run, 130 on Ctrl-C."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dcmtier.sample import write_ct_series
from tests.support import skip_or_fail

DCMTIER = [sys.executable, "-m", "dcmtier.cli"]


def _dcmtier(*args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DCMTIER, *args], capture_output=True, text=True, timeout=300, check=False,
        preexec_fn=lambda: os.umask(umask),
    )  # fmt: skip


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The error: one ``dcmtier:`` line, the last on stderr (progress lines may come first),
    and no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("dcmtier:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


@contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A small filesystem of our own (root only; outside CI the test skips without it)."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        skip_or_fail(f"cannot mount a tmpfs (it needs root): {mounted.stderr!r}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_out_naming_a_file_is_a_usage_error(small_landing: Path, tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    proc = _dcmtier("process", str(small_landing), "--out", str(target), "--tier", "j2k-lossless")
    assert proc.returncode == 2 and "is a file, not a folder" in _one_line(proc)


def test_an_output_inside_the_landing_area_is_a_usage_error(small_landing: Path) -> None:
    proc = _dcmtier("compress", str(small_landing), "--out", str(small_landing / "out"))
    line = _one_line(proc)
    assert proc.returncode == 2 and "is inside source folder 1 (SRC)" in line
    assert not (small_landing / "out").exists()


def test_a_mysql_url_is_a_usage_error(small_landing: Path, tmp_path: Path) -> None:
    proc = _dcmtier("process", str(small_landing), "--out", str(tmp_path / "o"),
                    "--catalogue", "mysql://u:secret@db/dcmtier")  # fmt: skip
    line = _one_line(proc)
    assert proc.returncode == 2 and "mysql is not supported" in line and "secret" not in line


def test_a_read_only_output_is_one_line(small_landing: Path, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as out:
        proc = _dcmtier("process", str(small_landing), "--out", str(out), "--no-catalogue")
    line = _one_line(proc)
    assert proc.returncode == 1 and "not writable" in line and "Read-only" in line


def test_a_full_disk_is_one_line_that_says_so(small_landing: Path, tmp_path: Path) -> None:
    write_ct_series(small_landing, slices=12, rows=256, columns=256, seed=10)
    with _tmpfs(tmp_path / "small", "size=600k") as out:
        proc = _dcmtier("process", str(small_landing), "--out", str(out), "--no-catalogue",
                        "--tier", "j2k-lossless", "--jobs", "1")  # fmt: skip
        leftovers = [p for p in out.rglob(".*.tmp")]
    line = _one_line(proc)
    assert proc.returncode == 1 and "No space left on device" in line
    assert "cannot read member" not in line
    assert leftovers == []


def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "landing", slices=40, rows=256, columns=256, seed=8)
    proc = subprocess.Popen(
        [*DCMTIER, "process", str(tmp_path / "landing"), "--out", str(tmp_path / "o"),
         "--no-catalogue", "--jobs", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((tmp_path / "o").rglob("*.dcm")) and time.monotonic() < deadline:
        time.sleep(0.1)  # interrupt it mid-run, once outputs are being written
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and lines[-1].startswith("dcmtier: interrupted")


def test_outputs_follow_the_umask(small_landing: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _dcmtier("process", str(small_landing), "--out", str(out), "--tier", "j2k-lossless",
                    umask=0o022)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    written = [
        p for p in out.rglob("*") if p.is_file() and p.suffix in (".dcm", ".zip", ".parquet")
    ]
    assert {p.suffix for p in written} == {".dcm", ".zip", ".parquet"}
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o644}
    out2 = tmp_path / "out2"
    proc = _dcmtier("process", str(small_landing), "--out", str(out2), "--tier", "j2k-lossless",
                    "--no-catalogue", umask=0o027)  # fmt: skip
    derived = list((out2 / "derived").rglob("*.dcm"))
    assert derived and {stat.S_IMODE(p.stat().st_mode) for p in derived} == {0o640}
