"""``scripts/install-system-deps.sh``: what ``make test`` and CI run before the tests.

The script is run for real, with ``dpkg`` and ``id`` replaced by small stand-ins on PATH, so
every path (present, missing as root, missing as a user) is tried without installing or
removing anything on this machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-system-deps.sh"
PACKAGES = (
    "libgdcm-tools", "libopenjp2-tools", "dicom3tools", "docker-compose", "chromium", "orthanc",
    "orthanc-dicomweb",
)  # fmt: skip


def _run(
    tmp_path: Path, *args: str, uid: int = 0, missing: str = ""
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stubs = {
        "dpkg": "exit 0",  # every package installed, unless DCMTIER_ASSUME_MISSING says not
        "id": f"echo {uid}",
        "apt-get": 'echo "apt-get $*" >> "$APT_LOG"',  # never the real one
    }
    for name, body in stubs.items():
        stub = bin_dir / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DCMTIER_ASSUME_MISSING": missing,
        "APT_LOG": str(tmp_path / "apt.log"),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False
    )


def test_nothing_happens_when_every_package_is_present(tmp_path: Path) -> None:
    done = _run(tmp_path)
    assert done.returncode == 0 and done.stdout == done.stderr == ""
    assert not (tmp_path / "apt.log").exists()
    check = _run(tmp_path, "--check")
    assert check.returncode == 0 and "all present" in check.stdout


def test_check_and_dry_run_name_the_missing_packages(tmp_path: Path) -> None:
    check = _run(tmp_path, "--check", missing="libopenjp2-tools dicom3tools")
    assert check.returncode == 1
    assert check.stdout.strip() == "system packages missing: libopenjp2-tools dicom3tools"
    dry = _run(tmp_path, "--dry-run", missing="libopenjp2-tools")
    assert dry.returncode == 0
    assert "apt-get install -y --no-install-recommends libopenjp2-tools" in dry.stdout
    assert not (tmp_path / "apt.log").exists()


def test_root_installs_exactly_the_missing_packages(tmp_path: Path) -> None:
    done = _run(tmp_path, uid=0, missing="libopenjp2-tools")
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls == [
        "apt-get update -q",
        "apt-get install -y -q --no-install-recommends libopenjp2-tools",
    ]


def test_a_user_gets_one_line_saying_what_to_run(tmp_path: Path) -> None:
    done = _run(tmp_path, uid=1000, missing="libopenjp2-tools")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "libopenjp2-tools" in done.stderr
    assert "sudo bash scripts/install-system-deps.sh" in done.stderr
    assert not (tmp_path / "apt.log").exists()


def test_ci_and_make_test_run_the_same_script() -> None:
    root = SCRIPT.parents[1]
    ci = (root / ".ci" / "run").read_text()
    assert "bash scripts/install-system-deps.sh" in ci and "apt-get" not in ci
    make = subprocess.run(
        ["make", "-n", "test"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    assert make.index("scripts/install-system-deps.sh") < make.index("pytest")
    for package in PACKAGES:
        assert package in SCRIPT.read_text()
