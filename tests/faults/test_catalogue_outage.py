"""A PostgreSQL catalogue that goes away mid-run, for real: a throwaway server of the test's
own (``initdb`` and ``pg_ctl`` under /tmp, another port), stopped between two study x tiers.

A 2-second outage is retried and the run ends ``ok``; an outage longer than the retry budget
ends the run with one line, and the unfinished attempt then reads ``abandoned``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dcmtier.catalogue import Catalogue
from tests.faults.support import TIERS, jobs, process_args, start, temps, wait_for
from tests.support import skip_or_fail

BIN = Path("/usr/lib/postgresql/15/bin")


class Server:
    """A PostgreSQL cluster of its own, run as the ``postgres`` user."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dcmtier-outage-", dir="/tmp"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres(BIN / "initdb", "-D", self.folder / "data", "-A", "trust", "-U",
                          "postgres", "--no-sync")  # fmt: skip
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(BIN / "pg_ctl", "-D", self.folder / "data", "-o", options,
                          "-l", self.folder / "log", "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self._as_postgres(BIN / "pg_ctl", "-D", self.folder / "data", "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), "-D",
                        str(self.folder / "data"), "-m", "immediate", "-w", "stop"],
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    def _as_postgres(*args: str | Path) -> None:
        command = ["runuser", "-u", "postgres", "--", *map(str, args)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.fixture
def server() -> Iterator[Server]:
    try:
        made = Server()
        made.start()
    except (OSError, subprocess.CalledProcessError, LookupError) as exc:
        skip_or_fail(f"cannot start a throwaway PostgreSQL here: {exc}")
    Catalogue.upgrade(made.url)
    yield made
    made.remove()


def _stop_between_tiers(
    server: Server, landing: Path, tmp_path: Path, **env: str
) -> subprocess.Popen[str]:
    """Run the command; stop the server while it waits between two tiers, let it go on."""
    marker = tmp_path / "paused"
    run = start(process_args(landing, tmp_path / "out", server.url), pause_at="between-tiers",
                marker=marker, **env)  # fmt: skip
    wait_for(marker, run)
    server.stop()
    marker.unlink()
    return run


def test_a_two_second_outage_is_retried_and_the_run_ends_ok(
    server: Server, landing: Path, tmp_path: Path
) -> None:
    run = _stop_between_tiers(server, landing, tmp_path)
    time.sleep(2)
    server.start()
    _, err = run.communicate(timeout=180)

    assert run.returncode == 0, err
    assert "Traceback" not in err
    assert "retry 1 in" in err  # each retry is logged
    rows = jobs(server.url)
    assert {r["status"] for r in rows} == {"ok"} and len(rows) == 2 * len(TIERS)
    assert temps(tmp_path / "out") == []


def test_a_longer_outage_ends_the_run_with_one_line_and_the_attempt_is_abandoned(
    server: Server, landing: Path, tmp_path: Path
) -> None:
    run = _stop_between_tiers(server, landing, tmp_path, DCMTIER_CATALOGUE_RETRY_SECONDS="2")
    _, err = run.communicate(timeout=180)
    server.start()

    assert run.returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("dcmtier:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "unreachable" in lines[0] and "attempts over" in lines[0], lines
    catalogue = Catalogue.connect(server.url)
    unfinished = [r for r in jobs(server.url) if r["status"] == "running"]
    assert len(unfinished) == 1
    assert catalogue.reap() == [unfinished[0]["id"]]  # its owner has exited
    with catalogue.engine.connect() as connection:
        listed = connection.execute(text("SELECT status, reason FROM failures")).all()
    catalogue.close()
    assert [s for s, _ in listed] == ["abandoned"]
    assert "is no longer running" in listed[0][1]
