"""Duplicate instances are recorded as such; derived instances record the precision coded.

- ``failure_records.status`` may be ``duplicate``: a file that repeats another file's SOP
  Instance UID with identical pixel data (the instance is made once; the repeat is listed in
  ``failures`` with its file key, so an archive's re-sends are visible).
- ``derived_instances.bits_stored``: the precision written in the output's Bits Stored. It
  is above the source's (``instances.bits_stored``) when stored values used bits above the
  declared Bits Stored and a tier kept them (NULL for rows made before this revision).

The check constraint is replaced in batch mode (SQLite recreates the table); the ``failures``
view, which reads the table, is dropped before and made again after.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations.versions.v0003_unidentified import FAILURES

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES_0001 = "status IN ('failed', 'refused', 'gate_failed')"
STATUSES = "status IN ('failed', 'refused', 'gate_failed', 'duplicate')"


def upgrade() -> None:
    _replace_check(STATUSES)
    op.add_column("derived_instances", sa.Column("bits_stored", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("derived_instances", "bits_stored")
    op.execute("DELETE FROM failure_records WHERE status = 'duplicate'")
    _replace_check(STATUSES_0001)


def _replace_check(condition: str) -> None:
    op.execute("DROP VIEW failures")
    with op.batch_alter_table("failure_records") as batch:
        batch.drop_constraint(op.f("ck_failure_records_status"), type_="check")
        batch.create_check_constraint("status", condition)
    op.execute(FAILURES)
