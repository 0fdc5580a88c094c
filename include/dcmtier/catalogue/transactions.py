"""How the catalogue's parts reach the database: one short transaction per call, retried.

`Transactions` holds the engine, the retry policy and the attempts' lease; each part of the
catalogue's API (`inventory`, `jobs`, `landing`, `claims`, `reports`) builds on it, and
`dcmtier.catalogue.store.Catalogue` puts the parts together. A write runs again after a
transient error (`retry`); every database error becomes a `CatalogueError` naming the
catalogue, password hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from dcmtier import owner
from dcmtier.catalogue.retry import GaveUp, Retry, first_line
from dcmtier.errors import CatalogueError

T = TypeVar("T")


class Transactions:
    """The engine of one catalogue, and the transactions its API runs on it."""

    def __init__(
        self, engine: Engine, *, retry: Retry | None = None, lease_s: float | None = None
    ) -> None:
        self._engine = engine
        self._retry = retry or Retry.from_environment()
        self.lease_s = float(lease_s or owner.lease_seconds())

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for ad-hoc queries of the views."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()

    def _write(self, work: Callable[[Connection], T], *, what: str = "writing") -> T:
        """Run ``work`` in one transaction, again after a transient error (`retry`)."""
        return self._run(work, what=what, write=True)

    def _run(
        self, work: Callable[[Connection], T], *, what: str, write: bool, retry: bool = True
    ) -> T:
        def once() -> T:
            if write:
                with self._engine.begin() as connection:
                    return work(connection)
            with self._engine.connect() as connection:
                return work(connection)

        try:
            if not retry:
                return once()
            return self._retry.run(once, what=what, where=self.url)
        except GaveUp as exc:
            raise CatalogueError(f"catalogue at {self.url} unreachable, {what}: {exc}") from exc
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for a read that is not retried (operator look-ups)."""
        try:
            with self._engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: SQLAlchemyError) -> CatalogueError:
        return CatalogueError(f"catalogue at {self.url}: {first_line(exc)}")
