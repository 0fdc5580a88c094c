"""Publications: which derived instances were stored into which DICOMweb archive, and when.

- ``publications``: one row per (derived SOP Instance UID, destination URL), with its study,
  series and tier, whether dcmtier sent it or found it already there (``sent``), when it was
  first published and last found there. Destinations are archive URLs (no credentials, no
  landing paths). On PostgreSQL ``dcmtier_operator`` may read it; analysts read views only.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations import roles

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "publications",
        sa.Column("derived_sop_uid", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(512), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("sent", sa.Boolean(), nullable=False),
        sa.Column("first_published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("derived_sop_uid", "destination", name=op.f("pk_publications")),
    )
    op.create_index(op.f("ix_publications_study_uid_tier"), "publications", ["study_uid", "tier"])
    roles.grant(tables=["publications"])


def downgrade() -> None:
    roles.revoke(tables=["publications"])
    op.drop_index(op.f("ix_publications_study_uid_tier"), table_name="publications")
    op.drop_table("publications")
