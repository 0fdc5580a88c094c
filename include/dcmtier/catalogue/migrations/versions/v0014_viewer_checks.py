"""What the web viewers make of each tier (``dcmtier viewer-check --record``), and the
``delivery_by_tier`` view.

- ``viewer_checks``: one row per tier x viewer (a Cornerstone3D dicom-image-loader release,
  e.g. ``cornerstone-5.6.8``), the latest check's: decodable, bit-exact (lossless tiers),
  largest difference from the source, decode milliseconds per frame (median, 95th
  percentile), and the median checked study's ZIP bytes, download and time to display (the
  download plus decoding every frame) at 100 Mbit/s and 1 Gbit/s. No paths, no patient data.
- ``delivery_by_tier``: per tier, the median study's ZIP bytes and download times, the fastest
  time to display among the viewers that decode it, and which viewers decode it
  (``decodable_by``, comma-separated in name order).

On PostgreSQL, as for 0005's objects: ``dcmtier_analyst`` may read the view,
``dcmtier_operator`` the table and the view.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations import roles

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE, VIEW = "viewer_checks", "delivery_by_tier"
# the decoding viewers' names in one cell: each database's own aggregate
DECODABLE_BY = {
    "postgresql": "string_agg(viewer, ', ' ORDER BY viewer) FILTER (WHERE decodable)",
    "sqlite": "(SELECT group_concat(viewer, ', ') FROM (SELECT viewer FROM viewer_checks v "
    "WHERE v.tier = c.tier AND v.decodable ORDER BY viewer))",
}

DELIVERY = """
CREATE VIEW delivery_by_tier AS
SELECT c.tier AS tier,
       MAX(c.package_bytes) AS package_bytes,
       MAX(c.download_s_100mbps) AS download_s_100mbps,
       MAX(c.download_s_1gbps) AS download_s_1gbps,
       MIN(CASE WHEN c.decodable THEN c.display_s_100mbps END) AS display_s_100mbps,
       MIN(CASE WHEN c.decodable THEN c.display_s_1gbps END) AS display_s_1gbps,
       {decodable_by} AS decodable_by,
       MAX(c.checked_at) AS checked_at
FROM viewer_checks c
GROUP BY c.tier
"""


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("viewer", sa.String(64), nullable=False),
        sa.Column("transfer_syntax", sa.String(200), nullable=True),
        sa.Column("codec", sa.String(200), nullable=True),
        sa.Column("decodable", sa.Boolean(), nullable=False),
        sa.Column("bit_exact", sa.Boolean(), nullable=True),
        sa.Column("max_abs_diff", sa.Double(), nullable=True),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("studies", sa.Integer(), nullable=False),
        sa.Column("study_frames", sa.Integer(), nullable=False),
        sa.Column("decode_ms_median", sa.Double(), nullable=True),
        sa.Column("decode_ms_p95", sa.Double(), nullable=True),
        sa.Column("package_bytes", sa.BigInteger(), nullable=True),
        sa.Column("download_s_100mbps", sa.Double(), nullable=True),
        sa.Column("download_s_1gbps", sa.Double(), nullable=True),
        sa.Column("display_s_100mbps", sa.Double(), nullable=True),
        sa.Column("display_s_1gbps", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tier", "viewer", name=op.f("pk_viewer_checks")),
    )
    op.execute(DELIVERY.format(decodable_by=DECODABLE_BY[op.get_bind().dialect.name]))
    roles.grant([VIEW], [TABLE])


def downgrade() -> None:
    roles.revoke([VIEW], [TABLE])
    op.execute(f"DROP VIEW {VIEW}")
    op.drop_table(TABLE)
