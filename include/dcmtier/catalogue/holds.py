"""Exclusive holds on study x tier pairs, so that two runs never work on the same pair at once.

On PostgreSQL a hold is a session advisory lock, taken on one connection this process keeps
open while it holds anything: the server releases it when the process ends, however it ends.
On SQLite it is a ``flock``-ed file beside the database (``<catalogue>.holds/``), which the
kernel releases the same way. Holds are taken without waiting (`try_hold`); the caller decides
whether to wait and try again.

A PostgreSQL hold lives as long as its connection: `verify` (called by the lease heartbeat)
reconnects after a lost connection and takes the holds again, and names those another
process took meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from dcmtier.catalogue import locks
from dcmtier.catalogue.engine import sqlite_path
from dcmtier.catalogue.retry import first_line
from dcmtier.errors import CatalogueError

Pair = tuple[str, str]  # (study UID, tier)
log = logging.getLogger(__name__)


class Holds(Protocol):
    def try_hold(self, pair: Pair) -> bool: ...
    def release(self, pair: Pair) -> None: ...
    def verify(self) -> list[Pair]: ...
    def close(self) -> None: ...


def holds_for(engine: Engine) -> Holds:
    """The holds of this process on the catalogue behind ``engine``."""
    if engine.dialect.name != "sqlite":
        return AdvisoryHolds(engine)
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is None:  # in memory: no other process can see it
        return FileHolds(Path(tempfile.gettempdir()) / f"dcmtier-{os.getpid()}.holds")
    return FileHolds(path.with_name(path.name + ".holds"))


def pair_key(pair: Pair) -> int:
    """A signed 64-bit number for the pair (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.sha256(f"dcmtier-hold\0{pair[0]}\0{pair[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryHolds:
    """Session advisory locks on one connection kept open while anything is held."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._held: set[Pair] = set()
        self._lock = threading.Lock()  # the lease heartbeat verifies from its own thread

    def try_hold(self, pair: Pair) -> bool:
        with self._lock:
            if pair in self._held:
                return True
            try:
                taken = self._take(self._open(), pair)
            except SQLAlchemyError as exc:
                self._drop()
                raise CatalogueError(
                    f"catalogue at {self._engine.url.render_as_string(hide_password=True)}: "
                    f"cannot hold study {pair[0]} tier {pair[1]}: {first_line(exc)}"
                ) from exc
            if taken:
                self._held.add(pair)
            return taken

    def release(self, pair: Pair) -> None:
        with self._lock:
            if pair not in self._held:
                return
            self._held.discard(pair)
            try:
                self._open().execute(text("SELECT pg_advisory_unlock(:k)"), {"k": pair_key(pair)})
            except SQLAlchemyError:
                self._drop()  # ending the session releases every lock it held
            if not self._held:
                self._drop(clean=True)

    def verify(self) -> list[Pair]:
        """Pairs no longer held: the connection was lost and another process took them."""
        with self._lock:
            if not self._held:
                return []
            try:
                self._open().execute(text("SELECT 1"))
                return []
            except SQLAlchemyError as exc:
                log.warning("the connection holding %d pair(s) was lost: %s", len(self._held), exc)
                self._drop()
            try:
                connection = self._open()
                lost = [p for p in sorted(self._held) if not self._take(connection, p)]
            except SQLAlchemyError:
                self._drop()
                return []  # still unreachable: nobody else can take them through it either
            self._held.difference_update(lost)
            return lost

    def close(self) -> None:
        with self._lock:
            clean = not self._held
            self._held.clear()
            self._drop(clean=clean)

    def _open(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
        return self._connection

    @staticmethod
    def _take(connection: Connection, pair: Pair) -> bool:
        query = text("SELECT pg_try_advisory_lock(:k)")
        return bool(connection.execute(query, {"k": pair_key(pair)}).scalar_one())

    def _drop(self, *, clean: bool = False) -> None:
        """Let the connection go. Unless every lock was unlocked (``clean``), its session is
        ended, not handed back to a pool (`catalogue.engine.make_engine`'s ``pooled``): the
        locks it may still hold go with it."""
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                if not clean:
                    self._connection.invalidate()
                self._connection.close()
            self._connection = None


class FileHolds:
    """One ``flock``-ed file per held pair, in a folder beside the SQLite database."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._held: dict[Pair, tuple[int, Path]] = {}

    def try_hold(self, pair: Pair) -> bool:
        if pair in self._held:
            return True
        path = self._folder / f"{pair_key(pair) & 0xFFFFFFFFFFFFFFFF:016x}.lock"
        fd = locks.try_lock(path)
        if fd is None:
            return False
        self._held[pair] = (fd, path)
        return True

    def release(self, pair: Pair) -> None:
        held = self._held.pop(pair, None)
        if held is not None:
            locks.unlock(*held)

    def verify(self) -> list[Pair]:
        return []  # the kernel keeps a flock for as long as this process lives

    def close(self) -> None:
        for pair in list(self._held):
            self.release(pair)
