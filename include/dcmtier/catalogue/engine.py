"""Where the catalogue lives: resolving its URL and making an engine for it.

PostgreSQL in production, SQLite (``<data dir>/catalogue.db``) as the embedded default.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool, QueuePool

from dcmtier.errors import CatalogueError, ConfigError

ENV_URL = "DCMTIER_CATALOGUE_URL"
DEFAULT_NAME = "catalogue.db"
SQLITE_BUSY_TIMEOUT_S = 60  # concurrent local tasks wait for the writer instead of failing
SUPPORTED_BACKENDS = ("postgresql", "sqlite")
_DRIVER_LESS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}


def default_url(data_dir: Path) -> str:
    """The embedded catalogue: ``sqlite:///<data_dir>/catalogue.db`` (absolute path)."""
    return f"sqlite:///{(data_dir / DEFAULT_NAME).absolute()}"


def resolve_url(explicit: str | None, data_dir: Path) -> str:
    """The catalogue URL: ``explicit``, else ``$DCMTIER_CATALOGUE_URL``, else the SQLite default.

    ``postgresql://`` and ``postgres://`` (as Airflow Connections write them) become
    ``postgresql+psycopg://``, the driver dcmtier installs.
    """
    return normalise_url(explicit or os.environ.get(ENV_URL) or default_url(data_dir))


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` name the psycopg (3) driver; others unchanged."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in _DRIVER_LESS:
        return f"{_DRIVER_LESS[scheme]}://{rest}"
    return url


def is_default(explicit: str | None) -> bool:
    """True when neither an explicit URL nor the environment names a catalogue."""
    return not explicit and not os.environ.get(ENV_URL)


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other engines and in-memory SQLite."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CatalogueError(f"not a database URL: {url!r} ({exc})") from exc
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return None if parsed.database == ":memory:" else Path(parsed.database)


POOL_SIZE = 2  # a pooled engine's kept connections: the work's and its lease's
_pooled: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_pools_in_child() -> None:
    """A forked process must not use, or close, its parent's pooled sockets (SQLAlchemy's
    ``dispose(close=False)`` recipe): it opens its own if it needs one."""
    for engine in list(_pooled):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_pools_in_child)


def make_engine(url: str, *, pooled: bool = False) -> Engine:
    """An engine without a connection pool: each call opens and closes its own connection.

    No pooled socket survives into the processes the batch forks, and an idle Airflow worker
    holds no connection. SQLite gets foreign keys on and ``BEGIN IMMEDIATE`` transactions, so
    concurrent writers queue on the busy timeout instead of failing to upgrade a read lock.

    ``pooled`` (PostgreSQL only; for an owner that closes its catalogue when done, such as a
    work unit's task) keeps ``POOL_SIZE`` connections open instead: a unit of many small
    studies makes hundreds of short transactions, and a new PostgreSQL connection costs
    about 5 ms each. A forked child drops the pool it inherited without closing it.
    """
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as exc:
        raise CatalogueError(f"not a database URL: {url!r} ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"catalogue URL {safe_url(url)}: {backend} is not supported; use postgresql:// "
            "or sqlite:///"
        )
    if backend != "sqlite" and pooled:
        engine = create_engine(parsed, poolclass=QueuePool, pool_size=POOL_SIZE, max_overflow=4)
        _pooled.add(engine)
        return engine
    if backend != "sqlite":
        return create_engine(parsed, poolclass=NullPool)
    engine = create_engine(
        parsed, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" hook below start transactions
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
