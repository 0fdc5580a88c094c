"""Duplicate instances are recorded as such; derived instances record the precision coded.

- ``failure_records.status`` may be ``duplicate``: a file that repeats another file's SOP
  Instance UID with identical pixel data (the instance is made once; the repeat is listed in
  ``failures`` under its file key, so an archive's re-sends are visible).
- ``derived_instances.bits_stored``: the precision written in the output's Bits Stored. It
  is above the source's (``instances.bits_stored``) when stored values used bits above the
  declared Bits Stored and a tier kept them (NULL for rows made before this revision).

Every view is dropped before the table changes and made again after, as in 0007 (SQLite
changes a CHECK constraint by copying the table, which a view reading it would block); on
PostgreSQL the views made again get back their grants. Downgrade deletes the ``duplicate``
failure rows first (the old constraint does not allow them).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations import roles
from dcmtier.catalogue.migrations.versions.v0002_views import SAVINGS_BY_STUDY, SAVINGS_BY_TIER
from dcmtier.catalogue.migrations.versions.v0004_lineage_strategy import LINEAGE
from dcmtier.catalogue.migrations.versions.v0005_file_locations import ANALYST_VIEWS
from dcmtier.catalogue.migrations.versions.v0006_ownership import FAILURES
from dcmtier.catalogue.migrations.versions.v0007_gate_outcomes import (
    FAILURES_AFTER as FAILURES_BEFORE,
)
from dcmtier.catalogue.migrations.versions.v0007_gate_outcomes import QUALITY_BY_TIER

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAILURES_AFTER = (*FAILURES_BEFORE, "duplicate")


def _statuses(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("failure_records", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_failure_records_status"), type_="check")
        batch.create_check_constraint(op.f("ck_failure_records_status"), f"status IN {values!r}")


def _drop_views() -> None:
    for name in ANALYST_VIEWS:
        op.execute(f"DROP VIEW {name}")


def _make_views() -> None:
    for sql in (SAVINGS_BY_TIER, SAVINGS_BY_STUDY, QUALITY_BY_TIER, LINEAGE, FAILURES):
        op.execute(sql)
    roles.grant(ANALYST_VIEWS)


def upgrade() -> None:
    _drop_views()
    _statuses(FAILURES_AFTER)
    op.add_column("derived_instances", sa.Column("bits_stored", sa.SmallInteger(), nullable=True))
    _make_views()


def downgrade() -> None:
    _drop_views()
    op.execute("DELETE FROM failure_records WHERE status = 'duplicate'")
    _statuses(FAILURES_BEFORE)
    with op.batch_alter_table("derived_instances", recreate="auto") as batch:
        batch.drop_column("bits_stored")
    _make_views()
