"""PSNR and SSIM against each frame's own data range, beside the nominal ones.

The nominal PSNR and SSIM (peak and L = (2^BitsStored - 1)|slope|, the reference survey's
definition) saturate on images that use a small part of their bits, so quality gates and
bounds judge PSNR and SSIM against the source frame's range instead (its 0.1st to 99.9th
percentile in modality units: ``dcmtier.measure.datarange``). The nominal columns stay.

- ``frame_quality`` gains ``psnr_db_range`` (+inf when exact), ``ssim_range`` and
  ``data_range`` (in the row's ``unit``); NULL for rows written before.
- ``derived_instances`` gains ``psnr_range_min`` and ``ssim_range_min``, the worst frame's.
- ``quality_by_tier``, ``quality_by_modality`` and ``quality_by_scanner`` (0010) gain
  ``psnr_range_min`` and ``ssim_range_min`` after their earlier columns (NULL for a group
  measured only before this revision).

Upgrade makes only those three views again (adding columns copies no table); downgrade drops
and makes every view that reads the two tables, as 0008 does (SQLite drops a column by copying
the table, which a view reading it would block). On PostgreSQL the views made again get back
the grants of 0005 (SELECT to ``dcmtier_analyst`` and ``dcmtier_operator``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations.versions.v0002_views import SAVINGS_BY_STUDY, SAVINGS_BY_TIER
from dcmtier.catalogue.migrations.versions.v0004_lineage_strategy import LINEAGE
from dcmtier.catalogue.migrations.versions.v0005_file_locations import (
    ANALYST,
    ANALYST_VIEWS,
    OPERATOR,
)
from dcmtier.catalogue.migrations.versions.v0006_ownership import FAILURES
from dcmtier.catalogue.migrations.versions.v0007_gate_outcomes import (
    QUALITY_BY_TIER as QUALITY_0007,
)
from dcmtier.catalogue.migrations.versions.v0010_descriptors import VIEWS as DESCRIBED_0010
from dcmtier.catalogue.migrations.versions.v0010_descriptors import quality_view

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FRAME_COLUMNS = ("psnr_db_range", "ssim_range", "data_range")
INSTANCE_COLUMNS = ("psnr_range_min", "ssim_range_min")

QUALITY_BY_TIER = """
CREATE VIEW quality_by_tier AS
WITH measured AS (
    SELECT d.tier AS tier, q.psnr_db, q.ssim, q.max_abs_diff, q.mean_abs_diff, q.fell_back,
           q.psnr_db_range, q.ssim_range
    FROM frame_quality q
    JOIN derived_instances d ON d.id = q.derived_id
),
ranked AS (
    SELECT tier, psnr_db,
           ROW_NUMBER() OVER (PARTITION BY tier ORDER BY psnr_db) AS position,
           COUNT(*) OVER (PARTITION BY tier) AS n
    FROM measured
),
medians AS (
    SELECT tier, AVG(psnr_db) AS psnr_median
    FROM ranked
    WHERE position IN ((n + 1) / 2, (n + 2) / 2)
    GROUP BY tier
),
gates AS (
    SELECT tier, SUM(CASE WHEN gate_passed THEN 0 ELSE 1 END) AS gate_failures
    FROM derived_instances
    GROUP BY tier
)
SELECT m.tier AS tier,
       COUNT(*) AS frames,
       MIN(m.psnr_db) AS psnr_min,
       MIN(md.psnr_median) AS psnr_median,
       MIN(m.ssim) AS ssim_min,
       AVG(m.ssim) AS ssim_mean,
       MAX(m.max_abs_diff) AS max_abs_diff,
       AVG(m.mean_abs_diff) AS mean_abs_diff,
       CAST(MIN(g.gate_failures) AS BIGINT) AS gate_failures,
       CAST(SUM(CASE WHEN m.fell_back THEN 1 ELSE 0 END) AS BIGINT) AS fallback_frames,
       MIN(m.psnr_db_range) AS psnr_range_min,
       MIN(m.ssim_range) AS ssim_range_min
FROM measured m
JOIN medians md ON md.tier = m.tier
JOIN gates g ON g.tier = m.tier
GROUP BY m.tier
"""


def _ranged(sql: str) -> str:
    """A 0010 quality view with the worst frame's range-relative PSNR and SSIM added last."""
    measured = "q.fell_back\n    FROM frame_quality q"
    last = "AS fallback_frames\nFROM measured m"
    if measured not in sql or last not in sql:
        raise RuntimeError("0010's quality view no longer reads as 0012 expects")
    return sql.replace(
        measured, "q.fell_back, q.psnr_db_range, q.ssim_range\n    FROM frame_quality q"
    ).replace(
        last,
        "AS fallback_frames,\n       MIN(m.psnr_db_range) AS psnr_range_min,\n"
        "       MIN(m.ssim_range) AS ssim_range_min\nFROM measured m",
    )


RANGED = {
    "quality_by_tier": QUALITY_BY_TIER,
    "quality_by_modality": _ranged(quality_view("quality_by_modality", ["modality"])),
    "quality_by_scanner": _ranged(quality_view("quality_by_scanner", ["manufacturer", "model"])),
}


def _grant(views: Sequence[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT ON {', '.join(views)} TO {ANALYST}, {OPERATOR}")


def upgrade() -> None:
    for name in RANGED:
        op.execute(f"DROP VIEW {name}")
    for name in FRAME_COLUMNS:
        op.add_column("frame_quality", sa.Column(name, sa.Double(), nullable=True))
    for name in INSTANCE_COLUMNS:
        op.add_column("derived_instances", sa.Column(name, sa.Double(), nullable=True))
    for sql in RANGED.values():
        op.execute(sql)
    _grant(list(RANGED))


def downgrade() -> None:
    for view in (*ANALYST_VIEWS, *DESCRIBED_0010):
        op.execute(f"DROP VIEW {view}")
    with op.batch_alter_table("derived_instances", recreate="auto") as batch:
        for name in INSTANCE_COLUMNS:
            batch.drop_column(name)
    with op.batch_alter_table("frame_quality", recreate="auto") as batch:
        for name in FRAME_COLUMNS:
            batch.drop_column(name)
    for sql in (SAVINGS_BY_TIER, SAVINGS_BY_STUDY, QUALITY_0007, LINEAGE, FAILURES):
        op.execute(sql)
    for sql in DESCRIBED_0010.values():
        op.execute(sql)
    _grant([*ANALYST_VIEWS, *DESCRIBED_0010])
