"""Migration 0015: the ``estimates`` table and the ``estimate_vs_actual`` view, up and down."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect, text

from dcmtier.catalogue import Catalogue
from dcmtier.catalogue.engine import make_engine
from dcmtier.catalogue.estimates import save, versus_actual


def _tier(tier: str, stored: int) -> dict[str, object]:
    return {"scope": "tier", "tier": tier, "studies": 3, "source_bytes": 3000,
            "stored_bytes": stored, "stored_bytes_low": stored - 100,
            "stored_bytes_high": stored + 100, "cpu_hours": 0.01}  # fmt: skip


def test_estimates_are_kept_and_the_latest_is_compared_with_what_was_stored(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/catalogue.db"
    Catalogue.upgrade(url)
    engine = make_engine(url)
    common = {"sample_studies": 2, "seed": 0, "slots": 2}
    with engine.begin() as connection:
        save(connection, "old", datetime(2026, 1, 1, tzinfo=UTC), [_tier("j2k-r20", 9)], common)
        lines = [_tier("j2k-r20", 600), _tier("j2k-lossless", 1500),
                 {"scope": "total", "studies": 3, "source_bytes": 3000, "wall_s": 12.5,
                  "wall_s_dag": 30.0, "task_instances": 7, "metadata_bytes": 66500}]  # fmt: skip
        assert save(connection, "new", datetime.now(UTC), lines, common) == 3
    with engine.connect() as connection:
        rows = versus_actual(connection)
        total = connection.execute(
            text("SELECT wall_s, task_instances, slots FROM estimates WHERE scope = 'total'")
        ).one()
    assert total == (12.5, 7, 2)
    assert [(r["estimate_id"], r["tier"]) for r in rows] == [
        ("new", "j2k-lossless"), ("new", "j2k-r20"),
    ]  # fmt: skip
    assert rows[1]["stored_bytes_forecast"] == 600 and rows[1]["stored_bytes_done"] == 0
    assert rows[1]["studies_done"] == 0 and rows[1]["error"] is None and rows[1]["inside"] == 0
    Catalogue.downgrade(url, "0014")
    names = inspect(engine)
    assert "estimates" not in names.get_table_names()
    assert "estimate_vs_actual" not in names.get_view_names()
    Catalogue.upgrade(url)
    with engine.connect() as connection:
        assert versus_actual(connection) == []
    engine.dispose()
