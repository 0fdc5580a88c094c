"""``scripts/ui.sh`` (``make ui``): the cheap paths only; starting Airflow is checked by hand.

``--check`` says what would start and finds the two things that stop a start (no virtualenv,
a busy port) without starting anything.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "ui.sh"


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ui(
    tmp_path: Path, *args: str, port: int, venv: str = sys.prefix
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DCMTIER_VENV": venv, "DCMTIER_UI_PORT": str(port),
           "DCMTIER_DEMO_DIR": str(tmp_path / "demo")}  # fmt: skip
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False
    )


def test_check_says_what_would_start_and_starts_nothing(tmp_path: Path) -> None:
    port = _free_port()
    done = _ui(tmp_path, "--check", port=port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"at http://127.0.0.1:{port}" in done.stdout
    assert f"DAGs {REPO / 'dags'}, plugins {REPO / 'plugins'}" in done.stdout
    assert "sign-in: none (every visitor is an admin)" in done.stdout
    assert not (tmp_path / "demo").exists()


def test_check_finds_a_busy_port_and_a_missing_virtualenv(tmp_path: Path, listening: int) -> None:
    done = _ui(tmp_path, "--check", port=listening, venv=str(tmp_path / "no-venv"))
    assert done.returncode == 1
    problems = [line for line in done.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 2
    assert "run make install first" in problems[0] and f"port {listening} is in use" in problems[1]
    started = _ui(tmp_path, port=listening)  # a real start refuses the same way, at once
    assert started.returncode == 1 and "make ui: port" in started.stderr


def test_stop_with_nothing_running_says_so(tmp_path: Path) -> None:
    done = _ui(tmp_path, "--stop", port=_free_port())
    assert done.returncode == 0 and done.stdout.strip().startswith("no Airflow UI running")


def test_make_ui_and_ui_stop_run_the_script() -> None:
    for target, expected in (
        ("ui", "bash scripts/ui.sh"),
        ("ui-stop", "bash scripts/ui.sh --stop"),
    ):
        # Under `make test` the outer make's MAKEFLAGS/MAKELEVEL reach this one, which would then
        # print "Entering/Leaving directory" lines around the recipe: run it as a user would.
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        make = subprocess.run(["make", "-n", "-o", ".venv/.installed", target], cwd=REPO, env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        assert make.stdout.strip().splitlines()[-1] == expected
