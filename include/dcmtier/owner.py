"""Who owns a piece of work: this host, this process and when it started.

An attempt's job row records its owner, and every temporary file carries the owner that is
writing it in its name (``.<target>~<host>~<pid>~<start>~<random>.tmp``), so a later run can
tell a live writer's file from one a killed process left behind, and remove only the latter.

A process is identified by its pid *and* its start time (clock ticks since boot, from
``/proc``), so a pid reused by another process does not pass for the dead owner. On another
host the pid cannot be checked: there the owner's lease (``DCMTIER_LEASE_SECONDS``) decides.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dcmtier.errors import ConfigError
from dcmtier.outputs import output_mode

LEASE_ENV = "DCMTIER_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 180
PAUSE_ENV = "DCMTIER_TEST_PAUSE_AT"  # fault-injection tests only: see `checkpoint`
_TEMP = re.compile(r"~(?P<host>[A-Za-z0-9-]+)~(?P<pid>\d+)~(?P<start>\d+)~[A-Za-z0-9_]*\.tmp$")
_LEGACY_TEMP = re.compile(r"^\..+\.tmp$")  # temp names written before owners were recorded


@dataclass(frozen=True)
class Owner:
    """One process on one host; ``start`` is its start in clock ticks since boot."""

    host: str
    pid: int
    start: int

    @property
    def token(self) -> str:
        """The owner as it appears in temporary file names."""
        return f"~{self.host}~{self.pid}~{self.start}~"

    def is_gone(self) -> bool | None:
        """True when this owner's process has ended; None when it runs on another host."""
        if self.host != current().host:
            return None
        started = _start_ticks(self.pid)
        return started is None or started != self.start


_current: Owner | None = None


def current() -> Owner:
    """The calling process (worked out again after a fork)."""
    global _current  # noqa: PLW0603 - one value per process, cached
    pid = os.getpid()
    if _current is None or _current.pid != pid:
        _current = Owner(_host(), pid, _start_ticks(pid) or 0)
    return _current


def lease_seconds() -> int:
    """How long an owner's lease lasts without renewal (``$DCMTIER_LEASE_SECONDS``, 180)."""
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_SECONDS
    try:
        value = int(text)
    except ValueError as exc:
        raise ConfigError(f"{LEASE_ENV} must be a whole number of seconds, not {text!r}") from exc
    if value < 5:
        raise ConfigError(f"{LEASE_ENV} must be at least 5 seconds, not {value}")
    return value


def temp_file(target: Path, *, directory: bool = False) -> Path:
    """Create an empty temporary file (or folder) beside ``target``, named for its owner.

    ``tempfile`` makes it owner-only; it gets the mode the umask gives a plain ``open`` (or
    ``mkdir``) instead, so what is renamed into place follows the umask like any output.
    """
    if not directory:
        path, handle = open_temp(target)
        handle.close()
        return path
    target.parent.mkdir(parents=True, exist_ok=True)
    name = tempfile.mkdtemp(prefix=f".{target.name}{current().token}", suffix=".tmp",
                            dir=target.parent)  # fmt: skip
    os.chmod(name, output_mode(directory=True))
    return Path(name)


def open_temp(target: Path) -> tuple[Path, BinaryIO]:
    """`temp_file`, left open for writing (one file creation, no second open)."""
    prefix = f".{target.name}{current().token}"
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
    except FileNotFoundError:  # the first file of its folder
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, output_mode(directory=False))
        return Path(name), os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise


@dataclass(frozen=True)
class Temp:
    """A temporary file being written: its path, and its handle open for writing."""

    path: Path
    file: BinaryIO


@contextmanager
def replacing(target: Path) -> Iterator[Temp]:
    """Write-to-temp-then-replace: the one way dcmtier writes a file readers may be reading.

    Yields a temporary file beside ``target`` (`open_temp`: named for this process, so other
    live writers leave it alone and a dead one's is swept). When the block ends without an
    error the file is closed and moved over ``target`` with ``os.replace``, which is atomic: a
    reader sees the old file or the new one, never part of one. On any error (or signal) it is
    removed and ``target`` is left as it was. The block may close the file itself, to check
    what it wrote before it replaces ``target``.
    """
    tmp, handle = open_temp(target)
    try:
        with handle:
            yield Temp(tmp, handle)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temp_owner(path: Path) -> Owner | None:
    """The owner named in a temporary file's name; None for any other name."""
    found = _TEMP.search(path.name)
    if found is None:
        return None
    return Owner(found["host"], int(found["pid"]), int(found["start"]))


def is_dead_temp(path: Path, *, now: float | None = None) -> bool:
    """True for a temporary file whose writer is gone.

    On this host the writer's process decides; a temporary file of another host, or one named
    before owners were recorded, counts as dead once untouched for a lease.
    """
    if not path.name.endswith(".tmp") or not path.name.startswith("."):
        return False
    owner = temp_owner(path)
    gone = owner.is_gone() if owner is not None else None
    if gone is not None:
        return gone
    if owner is None and not _LEGACY_TEMP.match(path.name):
        return False
    try:
        idle = (time.time() if now is None else now) - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    return idle > lease_seconds()


def remove_dead_temps(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Remove the temporary files and folders under ``folder`` whose writers are gone."""
    if not folder.is_dir():
        return []
    candidates = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    removed = []
    for path in sorted(candidates):
        if not is_dead_temp(path):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def checkpoint(name: str) -> None:
    """A named point where the fault-injection tests stop a run; nothing otherwise.

    With ``DCMTIER_TEST_PAUSE_AT=<name>:<marker file>`` in the environment, the first process
    to reach the point creates the marker file (holding its pid) and waits while the file
    exists, so the test can kill it exactly there, or delete the file to let it go on. Unset
    (always, outside ``tests/faults``), this is one dictionary lookup.
    """
    spec = os.environ.get(PAUSE_ENV)
    if not spec or name in _passed:
        return
    point, _, marker = spec.partition(":")
    if point != name or not marker:
        return
    _passed.add(name)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # another process of the run stopped here first
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    deadline = time.monotonic() + 3600
    while os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.05)


_passed: set[str] = set()


def _host() -> str:
    name = socket.gethostname().split(".")[0] or "localhost"
    return re.sub(r"[^A-Za-z0-9-]", "-", name)[:63]


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when there is no such process.

    Without ``/proc`` (not Linux), 0 for any live process: the pid alone decides.
    """
    if not Path("/proc/self/stat").exists():
        return _alive_without_proc(pid)
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no such process (any more)
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces and ")"
    if fields and fields[0] == "Z":  # a zombie has ended; only its exit status is left
        return None
    return int(fields[19])


def _alive_without_proc(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0
    return 0
