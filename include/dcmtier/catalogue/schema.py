"""Schema revisions: the Alembic migrations shipped in the package, run from code.

The ``Config`` is built here, without an ``alembic.ini``; ``migrations/env.py`` reads the URL
from ``config.attributes["url"]``. Migrations are the only way the schema is made, in tests too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from dcmtier.catalogue import locks
from dcmtier.catalogue.engine import make_engine, normalise_url, safe_url, sqlite_path
from dcmtier.errors import CatalogueError

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "dcmtier_catalogue_version"  # not alembic_version: the database may be shared
MIGRATION_LOCK = 0x64636D7469657200  # PostgreSQL advisory lock key of `upgrade` ("dcmtier")


def alembic_config(url: str) -> Config:
    """An Alembic ``Config`` for the catalogue at ``url``, built in code."""
    config = Config(attributes={"url": normalise_url(url)})
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str:
    """The revision this code needs."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise CatalogueError(f"no migrations found under {MIGRATIONS}")
    return head


def revisions() -> list[tuple[str, str]]:
    """Every shipped revision, oldest first, with the first line of its description."""
    script = ScriptDirectory.from_config(alembic_config(""))
    found = [
        (str(r.revision), (r.doc or "").strip().splitlines()[0] if r.doc else "")
        for r in script.walk_revisions()
    ]
    return found[::-1]


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; a SQLite file's folder is created if missing.

    Concurrent upgrades of one catalogue take turns: on SQLite on the lock file
    ``<catalogue>.lock``, on PostgreSQL on a transaction advisory lock (``migrations/env.py``);
    the later ones find the schema at head and do nothing.
    """
    path = sqlite_path(url)
    if path is None:
        _run(url, lambda config: command.upgrade(config, revision))
        return
    _make_folder(path)
    with locks.locked(path.with_name(path.name + ".lock")):
        _run(url, lambda config: command.upgrade(config, revision))


def _make_folder(path: Path) -> None:
    """The folder of a SQLite catalogue, made if missing; a file in its way is named."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocking = next((p for p in path.parents if p.is_file()), path.parent)
        raise CatalogueError(
            f"cannot create the catalogue {path}: {blocking} is a file, not a folder"
        ) from exc


def downgrade(url: str, revision: str = "base") -> None:
    """Revert migrations down to ``revision`` (``base`` drops every catalogue table and view)."""
    _run(url, lambda config: command.downgrade(config, revision))


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it has no catalogue schema."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def current_revision_at(url: str) -> str | None:
    """The revision of the database at ``url``; None when it has no catalogue schema (a
    missing SQLite file is not created)."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return None
    engine = make_engine(url)
    try:
        return _revision_or_error(engine)
    finally:
        engine.dispose()


def check_at_head(engine: Engine) -> None:
    """Raise ``CatalogueError`` unless the database is reachable and at the head revision."""
    current = _revision_or_error(engine)
    head = head_revision()
    if current != head:
        url = engine.url.render_as_string(hide_password=True)
        found = f"is at revision {current}" if current else "has no dcmtier schema"
        raise CatalogueError(
            f"the catalogue at {url} {found}, this dcmtier needs {head}: "
            f"run `dcmtier db upgrade --catalogue {url}`"
        )


def _revision_or_error(engine: Engine) -> str | None:
    try:
        return current_revision(engine)
    except SQLAlchemyError as exc:
        url = engine.url.render_as_string(hide_password=True)
        raise CatalogueError(f"cannot reach the catalogue at {url}: {_first_line(exc)}") from exc


def _run(url: str, step: Callable[[Config], None]) -> None:
    config = alembic_config(url)
    try:
        step(config)
    except (SQLAlchemyError, CommandError) as exc:
        raise CatalogueError(
            f"migrating the catalogue at {safe_url(url)} failed: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def engine_at_head(url: str) -> Engine:
    """An engine for ``url`` once the schema there is checked to be at head."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise CatalogueError(
            f"no catalogue at {path}: run `dcmtier db upgrade --catalogue {url}` "
            "(or `dcmtier process`, which creates the embedded one)"
        )
    engine = make_engine(url)
    check_at_head(engine)
    return engine
