"""The web viewers' checks of each tier (``dcmtier viewer-check --record``): one row per
tier x viewer, the latest check replacing the one before; ``delivery_by_tier`` reads them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dcmtier.catalogue.models import ViewerCheck

COLUMNS = tuple(c.name for c in ViewerCheck.__table__.columns if c.name != "checked_at")


def record_viewer_checks(url: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write the (tier, viewer) rows ``dcmtier.viewer.check`` made into the catalogue at
    ``url`` (migrated: ``dcmtier db upgrade``), stamped with the time now."""
    from dcmtier.catalogue import Catalogue
    from dcmtier.catalogue.upsert import upsert

    now = datetime.now(UTC)
    values = [{**{c: row.get(c) for c in COLUMNS}, "checked_at": now} for row in rows]
    catalogue = Catalogue.connect(url)
    try:
        with catalogue.engine.begin() as connection:
            upsert(connection, ViewerCheck, values, keys=("tier", "viewer"))
    finally:
        catalogue.close()
