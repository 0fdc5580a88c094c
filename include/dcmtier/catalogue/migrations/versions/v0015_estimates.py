"""Forecasts of ``dcmtier estimate`` and how the last one compares with what was stored.

- ``estimates``: one row per line of an estimate (``scope`` tier, modality or total), the lines
  of one estimate under one ``estimate_id``: studies, source bytes, projected stored bytes with
  the 95 % interval, CPU hours; on the total line the wall times (``dcmtier process`` and the
  DAG), task instances and Airflow metadata bytes, the per-study cost model fitted on the
  sample (``cost_*``: what work units are packed by until the catalogue has attempts enough),
  and the sample size, seed and slots.
- ``estimate_vs_actual``: the latest estimate's tier lines beside ``savings_by_tier`` (what the
  catalogue holds for that tier now): stored bytes forecast and measured, the interval, and
  whether the measured bytes lie inside it. The measured figures cover every study of the
  catalogue, so they compare with the forecast once the backfill of that landing is done.

The view reads ``savings_by_tier``: a later migration that replaces that view drops this one
first and makes it again. No landing paths, no UIDs: on PostgreSQL both ``dcmtier_analyst``
and ``dcmtier_operator`` may read the table and the view (roles from 0005).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations import roles

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ESTIMATE_VS_ACTUAL = """
CREATE VIEW estimate_vs_actual AS
WITH latest AS (
    SELECT estimate_id, created_at
    FROM estimates
    WHERE id = (SELECT MAX(id) FROM estimates)
)
SELECT e.estimate_id AS estimate_id,
       l.created_at AS estimated_at,
       e.tier AS tier,
       e.studies AS studies_forecast,
       COALESCE(s.studies, 0) AS studies_done,
       e.source_bytes AS source_bytes_forecast,
       CAST(COALESCE(s.original_bytes, 0) AS BIGINT) AS source_bytes_done,
       e.stored_bytes AS stored_bytes_forecast,
       e.stored_bytes_low AS stored_bytes_low,
       e.stored_bytes_high AS stored_bytes_high,
       CAST(COALESCE(s.compressed_bytes, 0) AS BIGINT) AS stored_bytes_done,
       CAST(s.compressed_bytes AS DOUBLE PRECISION)
           / CAST(NULLIF(e.stored_bytes, 0) AS DOUBLE PRECISION) - 1.0 AS error,
       CASE WHEN s.compressed_bytes BETWEEN e.stored_bytes_low AND e.stored_bytes_high
            THEN 1 ELSE 0 END AS inside
FROM estimates e
JOIN latest l ON l.estimate_id = e.estimate_id
LEFT JOIN savings_by_tier s ON s.tier = e.tier
WHERE e.scope = 'tier'
"""


def upgrade() -> None:
    op.create_table(
        "estimates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("estimate_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(32), nullable=True),
        sa.Column("modality", sa.String(16), nullable=True),
        sa.Column("studies", sa.Integer(), nullable=False),
        sa.Column("source_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=True),
        sa.Column("stored_bytes_low", sa.BigInteger(), nullable=True),
        sa.Column("stored_bytes_high", sa.BigInteger(), nullable=True),
        sa.Column("cpu_hours", sa.Double(), nullable=True),
        sa.Column("wall_s", sa.Double(), nullable=True),
        sa.Column("wall_s_dag", sa.Double(), nullable=True),
        sa.Column("task_instances", sa.BigInteger(), nullable=True),
        sa.Column("metadata_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sample_studies", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("cost_study_s", sa.Double(), nullable=True),
        sa.Column("cost_byte_s", sa.Double(), nullable=True),
        sa.Column("cost_instance_s", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_estimates")),
    )
    op.create_index(op.f("ix_estimates_estimate_id"), "estimates", ["estimate_id"])
    op.execute(ESTIMATE_VS_ACTUAL)
    # analysts read the view, never a table (0005's rule); operators read both; the table
    # holds no location or UID, so it stays as visible to PUBLIC as PostgreSQL makes it
    roles.grant(["estimate_vs_actual"], ["estimates"], hide_tables=False)


def downgrade() -> None:
    roles.revoke(["estimate_vs_actual"], ["estimates"])
    op.execute("DROP VIEW estimate_vs_actual")
    op.drop_index(op.f("ix_estimates_estimate_id"), table_name="estimates")
    op.drop_table("estimates")
