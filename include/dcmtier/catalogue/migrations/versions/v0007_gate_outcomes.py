"""Gate outcomes: what ``on_gate_failure`` did, per frame, and the ``rejected`` status.

- ``frame_quality`` gains ``pixel_ratio`` (the frame's achieved ratio; NULL for rows written
  before), ``gate_action`` (``fallback``, ``reject`` or ``keep``; NULL when the frame met its
  gate) and ``fell_back`` (the frame was recoded at a lower ratio to meet its gate).
- ``derived_instances`` gains ``fallback_frames`` (how many of its frames fell back).
- ``jobs.status`` and ``failure_records.status`` accept ``rejected``: an instance whose output
  the gate rejected (nothing kept, no derived row, so the savings views never count it), and a
  study x tier whose every output was rejected.
- ``quality_by_tier`` gains ``fallback_frames`` after its earlier columns.

Every view is dropped before the tables change and made again after: SQLite changes a CHECK
constraint by copying the table (Alembic's batch mode), which a view reading it would block.
On PostgreSQL the views made again are granted again as 0005 and 0006 grant them (SELECT to
``dcmtier_analyst`` and ``dcmtier_operator``): a dropped view loses its grants. Downgrade
deletes the ``rejected`` failure rows and makes ``rejected`` attempts ``partial`` first (the
old constraints do not allow them).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations import roles
from dcmtier.catalogue.migrations.quality import quality_by_tier
from dcmtier.catalogue.migrations.versions.v0002_views import QUALITY_BY_TIER as QUALITY_0002
from dcmtier.catalogue.migrations.versions.v0002_views import SAVINGS_BY_STUDY, SAVINGS_BY_TIER
from dcmtier.catalogue.migrations.versions.v0004_lineage_strategy import LINEAGE
from dcmtier.catalogue.migrations.versions.v0005_file_locations import ANALYST_VIEWS
from dcmtier.catalogue.migrations.versions.v0006_ownership import FAILURES
from dcmtier.catalogue.migrations.versions.v0006_ownership import (
    FAILURES_AFTER as FAILURES_BEFORE,
)
from dcmtier.catalogue.migrations.versions.v0006_ownership import JOBS_AFTER as JOBS_BEFORE

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOBS_AFTER = (*JOBS_BEFORE, "rejected")
FAILURES_AFTER = (*FAILURES_BEFORE, "rejected")

QUALITY_BY_TIER = quality_by_tier(fallback=True)

VIEWS = ANALYST_VIEWS  # all five, in the order they are made


def _statuses(table: str, values: tuple[str, ...]) -> None:
    with op.batch_alter_table(table, recreate="auto") as batch:
        batch.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
        batch.create_check_constraint(op.f(f"ck_{table}_status"), f"status IN {values!r}")


def _make_views(quality_by_tier: str) -> None:
    for sql in (SAVINGS_BY_TIER, SAVINGS_BY_STUDY, quality_by_tier, LINEAGE, FAILURES):
        op.execute(sql)
    roles.grant(VIEWS)


def upgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    op.add_column("frame_quality", sa.Column("pixel_ratio", sa.Double(), nullable=True))
    op.add_column("frame_quality", sa.Column("gate_action", sa.String(16), nullable=True))
    op.add_column(
        "frame_quality",
        sa.Column("fell_back", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "derived_instances",
        sa.Column("fallback_frames", sa.Integer(), nullable=False, server_default="0"),
    )
    _statuses("jobs", JOBS_AFTER)
    _statuses("failure_records", FAILURES_AFTER)
    _make_views(QUALITY_BY_TIER)


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    op.execute("DELETE FROM failure_records WHERE status = 'rejected'")
    op.execute("UPDATE jobs SET status = 'partial' WHERE status = 'rejected'")
    _statuses("failure_records", FAILURES_BEFORE)
    _statuses("jobs", JOBS_BEFORE)
    op.drop_column("derived_instances", "fallback_frames")
    op.drop_column("frame_quality", "fell_back")
    op.drop_column("frame_quality", "gate_action")
    op.drop_column("frame_quality", "pixel_ratio")
    _make_views(QUALITY_0002)
