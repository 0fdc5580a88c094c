"""The PostgreSQL roles 0005 makes, and the grants each later migration gives what it adds.

0005's rule: ``dcmtier_analyst`` reads views only (never a table, so never a location),
``dcmtier_operator`` reads every catalogue table and view. A table that holds locations or run
bookkeeping is also hidden from PUBLIC. SQLite has no roles: on it both functions do nothing.

The statements are the ones the migrations have always run, word for word: an upgraded
catalogue's grants must not depend on which dcmtier upgraded it.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

ANALYST, OPERATOR = "dcmtier_analyst", "dcmtier_operator"


def grant(
    views: Sequence[str] = (), tables: Sequence[str] = (), *, hide_tables: bool = True
) -> None:
    """SELECT on ``views`` to both roles and on ``tables`` to the operator; ``tables`` hidden
    from PUBLIC unless ``hide_tables`` is False (a table without locations or UIDs)."""
    if not _on_postgresql():
        return
    if not tables:
        op.execute(f"GRANT SELECT ON {_names(views)} TO {ANALYST}, {OPERATOR}")
        return
    if views:
        op.execute(f"GRANT SELECT ON {_names(views)} TO {ANALYST}")
    op.execute(f"GRANT SELECT ON {_names((*tables, *views))} TO {OPERATOR}")
    if hide_tables:
        op.execute(f"REVOKE ALL ON {_names(tables)} FROM PUBLIC")


def revoke(views: Sequence[str] = (), tables: Sequence[str] = ()) -> None:
    """What `grant` gave the two roles, taken back (a downgrade; the roles stay: 0005)."""
    if not _on_postgresql():
        return
    roles = f"{ANALYST}, {OPERATOR}" if views else OPERATOR
    op.execute(f"REVOKE ALL ON {_names((*tables, *views))} FROM {roles}")


def _on_postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)
