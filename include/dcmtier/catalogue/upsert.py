"""Insert-or-update on a natural key, for PostgreSQL and SQLite alike (``ON CONFLICT``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from dcmtier.catalogue.models import Base
from dcmtier.errors import CatalogueError

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert(
    connection: Connection,
    model: type[Base],
    rows: Iterable[dict[str, Any]],
    *,
    keys: Sequence[str],
    keep: Sequence[str] = (),
) -> None:
    """Write ``rows``, updating those whose ``keys`` already exist (except the ``keep`` columns).

    Rows are deduplicated on the key (the last wins) and written in key order, so concurrent
    writers lock shared rows in the same order and wait for each other instead of deadlocking.
    """
    unique = {tuple(row[k] for k in keys): row for row in rows}
    if not unique:
        return
    ordered = [unique[key] for key in sorted(unique)]
    statement = _insert(connection, model)
    columns = [c for c in ordered[0] if c not in keys and c not in keep]
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: statement.excluded[c] for c in columns},
    )
    connection.execute(statement, ordered)


def upsert_returning_id(
    connection: Connection, model: type[Base], row: dict[str, Any], *, keys: Sequence[str]
) -> int:
    """Upsert one row and return its ``id``, whether it was inserted or updated."""
    statement = _insert(connection, model)
    columns = [c for c in row if c not in keys]
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: statement.excluded[c] for c in columns},
    )
    returned = connection.execute(
        statement.values(row).returning(model.__table__.c.id)
    ).scalar_one()
    return int(returned)


def _insert(connection: Connection, model: type[Base]) -> Any:
    name = connection.dialect.name
    try:
        return _INSERTS[name](model)
    except KeyError:
        raise CatalogueError(f"the catalogue runs on PostgreSQL or SQLite, not {name}") from None
