"""Lock files: how processes on one host take turns on a SQLite catalogue.

``flock`` locks belong to the open file and end with the process that holds them, so a killed
holder never blocks anyone. A released hold file is removed; a waiter that locked a file which
was removed meanwhile sees that its inode is no longer the path's and tries again.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def try_lock(path: Path) -> int | None:
    """Lock ``path`` (created if missing) without waiting; its descriptor, or None if held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the holder removed it as we opened it: lock the new one


def unlock(fd: int, path: Path, *, remove: bool = True) -> None:
    """Release a lock from `try_lock`; the file is removed first unless ``remove`` is False."""
    if remove:
        path.unlink(missing_ok=True)
    os.close(fd)


@contextmanager
def locked(path: Path, *, poll_s: float = 0.05) -> Iterator[None]:
    """Hold ``path`` exclusively for the block, waiting as long as another process holds it."""
    while (fd := try_lock(path)) is None:
        time.sleep(poll_s)
    try:
        yield
    finally:
        unlock(fd, path, remove=False)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
