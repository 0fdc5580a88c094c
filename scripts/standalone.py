"""Run ``airflow standalone`` for ``make ui`` and stop every process it started.

Usage: python scripts/standalone.py PIDFILE LOG

Standalone runs in a process group of its own, its output in LOG. Ctrl-C (SIGINT) or SIGTERM,
also sent by ``make ui-stop`` to the pid in PIDFILE, asks standalone to stop its components
(it does so on SIGINT). A component that does not exit keeps standalone waiting for ever (seen:
the scheduler's LocalExecutor pool after a Ctrl-C), so after a grace period the whole group is
terminated, then killed: nothing is left running either way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

GRACE_SECONDS = 45.0  # standalone's own shutdown
TERM_SECONDS = 15.0  # after SIGTERM to the group, before SIGKILL


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _exited(child: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def _signal_group(pgid: int, signum: int) -> bool:
    """Signal the group; False when no process of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _stop(child: subprocess.Popen[bytes]) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans
    print("== stopping Airflow", flush=True)
    child.send_signal(signal.SIGINT)
    if not _exited(child, GRACE_SECONDS):
        _signal_group(child.pid, signal.SIGTERM)
        if not _exited(child, TERM_SECONDS):
            _signal_group(child.pid, signal.SIGKILL)
            child.wait()
    # components standalone could not stop outlive it in the group
    deadline = time.monotonic() + TERM_SECONDS
    while _signal_group(child.pid, signal.SIGTERM) and time.monotonic() < deadline:
        time.sleep(0.5)
    _signal_group(child.pid, signal.SIGKILL)


def main(pidfile: Path, log: Path) -> int:
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    with log.open("ab") as out:
        child = subprocess.Popen(
            ["airflow", "standalone"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped as a whole, not by the terminal
        )
    pidfile.write_text(f"{os.getpid()}\n")
    try:
        try:
            return child.wait()
        except KeyboardInterrupt:
            _stop(child)
            return 0
    finally:
        pidfile.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
