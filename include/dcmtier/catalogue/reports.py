"""What the catalogue tells its readers: the analysts' views (``dcmtier report``), the
backlog of pending work, and row counts.

The views themselves are made only by the Alembic migrations under ``migrations/``; this
module reads them by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, func, select, text

from dcmtier.catalogue.models import Base
from dcmtier.catalogue.transactions import Transactions
from dcmtier.errors import CatalogueError
from dcmtier.tiers import TIERS

# every view the migrations make, in docs/analysts.md's order; `dcmtier report` shows the first two
VIEWS = (
    "savings_by_tier", "quality_by_tier", "savings_by_study", "lineage", "failures", "backlog",
    "savings_by_modality", "savings_by_month", "quality_by_modality", "quality_by_scanner",
    "delivery_by_tier", "estimate_vs_actual",
)  # fmt: skip
REPORT_VIEWS = VIEWS[:2]
_ROW_KEYS = ("study_uid", "source_sop_uid", "sop_uid", "file")
_TIER_ORDER = {name: index for index, name in enumerate(TIERS)}


class Reports(Transactions):
    """Read the views and count rows."""

    def backlog(self, limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """How many studies the ``backlog`` view holds, and its first ``limit`` rows (longest
        waiting first)."""
        rows = text("SELECT * FROM backlog ORDER BY waiting_since, study_uid LIMIT :n")
        with self._read() as connection:
            count = int(connection.execute(text("SELECT count(*) FROM backlog")).scalar_one())
            first = [dict(r) for r in connection.execute(rows, {"n": limit}).mappings()]
        return count, first

    def report(self, views: Sequence[str] = REPORT_VIEWS) -> dict[str, list[dict[str, Any]]]:
        """The rows of each of ``views`` (names from ``VIEWS``), in tier-table order."""
        unknown = sorted(set(views) - set(VIEWS))
        if unknown:
            raise CatalogueError(f"no view {unknown[0]!r}; the views: {', '.join(VIEWS)}")

        def read(connection: Connection) -> dict[str, list[dict[str, Any]]]:
            out: dict[str, list[dict[str, Any]]] = {}
            for view in views:
                found = connection.execute(text(f"SELECT * FROM {view}")).mappings()
                out[view] = sorted((dict(r) for r in found), key=_tier_order)
            return out

        return self._run(read, what="reading the views", write=False)

    def row_counts(self) -> dict[str, int]:
        """Rows in each catalogue table (what a rerun must leave unchanged)."""

        def read(connection: Connection) -> dict[str, int]:
            return {
                table.name: int(
                    connection.execute(select(func.count()).select_from(table)).scalar_one()
                )
                for table in Base.metadata.sorted_tables
            }

        return self._run(read, what="counting rows", write=False)


def _tier_order(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """Rows by the tier table's order, then by their study, instance or file."""
    tier = row.get("tier") or ""
    rest = ("" if row.get(c) is None else str(row.get(c)) for c in _ROW_KEYS)
    return (_TIER_ORDER.get(tier, len(_TIER_ORDER)), tier, *rest)
