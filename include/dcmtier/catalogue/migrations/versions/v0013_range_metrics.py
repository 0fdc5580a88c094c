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

from dcmtier.catalogue.migrations import roles
from dcmtier.catalogue.migrations.quality import quality_by_tier, quality_view
from dcmtier.catalogue.migrations.versions.v0002_views import SAVINGS_BY_STUDY, SAVINGS_BY_TIER
from dcmtier.catalogue.migrations.versions.v0004_lineage_strategy import LINEAGE
from dcmtier.catalogue.migrations.versions.v0005_file_locations import ANALYST_VIEWS
from dcmtier.catalogue.migrations.versions.v0006_ownership import FAILURES
from dcmtier.catalogue.migrations.versions.v0007_gate_outcomes import (
    QUALITY_BY_TIER as QUALITY_0007,
)
from dcmtier.catalogue.migrations.versions.v0010_descriptors import VIEWS as DESCRIBED_0010

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FRAME_COLUMNS = ("psnr_db_range", "ssim_range", "data_range")
INSTANCE_COLUMNS = ("psnr_range_min", "ssim_range_min")

RANGED = {
    "quality_by_tier": quality_by_tier(fallback=True, ranged=True),
    "quality_by_modality": quality_view("quality_by_modality", ["modality"], ranged=True),
    "quality_by_scanner": quality_view(
        "quality_by_scanner", ["manufacturer", "model"], ranged=True
    ),
}


def upgrade() -> None:
    for name in RANGED:
        op.execute(f"DROP VIEW {name}")
    for name in FRAME_COLUMNS:
        op.add_column("frame_quality", sa.Column(name, sa.Double(), nullable=True))
    for name in INSTANCE_COLUMNS:
        op.add_column("derived_instances", sa.Column(name, sa.Double(), nullable=True))
    for sql in RANGED.values():
        op.execute(sql)
    roles.grant(list(RANGED))


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
    roles.grant([*ANALYST_VIEWS, *DESCRIBED_0010])
