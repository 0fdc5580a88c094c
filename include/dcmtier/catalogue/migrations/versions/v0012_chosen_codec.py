"""Derived instances record the codec and transfer syntax they were coded with.

A codec-choosing tier (``maxerr20``, ``best-lossless``) picks the codec per instance, and a
JPEG-LS bound tier codes an instance losslessly (…4.80) when its bound is below one stored
step: the tier alone no longer says how an output was coded. ``derived_instances.codec``
(``j2k``, ``htj2k``, ``jls``, ``jxl``...) and ``derived_instances.transfer_syntax`` say it per
instance; NULL for rows made before this revision (their tier's codec and syntax apply).

Both columns are added and dropped with plain ALTER TABLE (SQLite 3.35 and later drop a
column in place), so no view needs to be made again.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("derived_instances", sa.Column("codec", sa.String(16), nullable=True))
    op.add_column("derived_instances", sa.Column("transfer_syntax", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("derived_instances", "transfer_syntax")
    op.drop_column("derived_instances", "codec")
