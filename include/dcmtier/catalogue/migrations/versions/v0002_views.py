"""The analysts' views: savings_by_tier, savings_by_study, quality_by_tier, lineage, failures.

Their names and columns are a contract (docs/reference/schema.md). The SQL runs unchanged on
PostgreSQL and SQLite: the PSNR median comes from ROW_NUMBER and COUNT windows (SQLite has no
percentile_cont), sums are cast to BIGINT (PostgreSQL's SUM(bigint) is numeric) and ratios to
DOUBLE PRECISION. PSNR +inf is a plain IEEE value on both engines, so MIN, AVG and the median
keep it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-20
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from dcmtier.catalogue.migrations.quality import quality_by_tier

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Source bytes are counted once per derived row, so each source instance once per tier.
SAVINGS_BY_TIER = """
CREATE VIEW savings_by_tier AS
WITH sizes AS (
    SELECT d.tier AS tier,
           COUNT(DISTINCT d.study_uid) AS studies,
           COUNT(*) AS instances,
           SUM(i.bytes) AS original_bytes,
           SUM(d.bytes) AS compressed_bytes
    FROM derived_instances d
    JOIN instances i ON i.sop_uid = d.source_sop_uid
    GROUP BY d.tier
),
zips AS (
    SELECT tier, SUM(bytes) AS zip_bytes FROM packages GROUP BY tier
)
SELECT s.tier AS tier,
       s.studies AS studies,
       s.instances AS instances,
       CAST(s.original_bytes AS BIGINT) AS original_bytes,
       CAST(s.compressed_bytes AS BIGINT) AS compressed_bytes,
       CAST(s.original_bytes - s.compressed_bytes AS BIGINT) AS saved_bytes,
       CAST(s.original_bytes AS DOUBLE PRECISION)
           / CAST(NULLIF(s.compressed_bytes, 0) AS DOUBLE PRECISION) AS ratio,
       CAST(COALESCE(z.zip_bytes, 0) AS BIGINT) AS zip_bytes
FROM sizes s
LEFT JOIN zips z ON z.tier = s.tier
"""

SAVINGS_BY_STUDY = """
CREATE VIEW savings_by_study AS
SELECT d.study_uid AS study_uid,
       s.modalities AS modality,
       d.tier AS tier,
       CAST(SUM(i.bytes) AS BIGINT) AS original_bytes,
       CAST(SUM(d.bytes) AS BIGINT) AS compressed_bytes,
       CAST(SUM(i.bytes) AS DOUBLE PRECISION)
           / CAST(NULLIF(SUM(d.bytes), 0) AS DOUBLE PRECISION) AS ratio
FROM derived_instances d
JOIN instances i ON i.sop_uid = d.source_sop_uid
JOIN studies s ON s.study_uid = d.study_uid
GROUP BY d.study_uid, s.modalities, d.tier
"""

QUALITY_BY_TIER = quality_by_tier()

LINEAGE = """
CREATE VIEW lineage AS
SELECT d.source_sop_uid AS source_sop_uid,
       d.derived_sop_uid AS derived_sop_uid,
       d.tier AS tier,
       j.run_id AS run_id,
       j.task_id AS task_id,
       j.try_number AS try_number,
       CAST(j.software AS TEXT) AS software,
       d.created_at AS created_at
FROM derived_instances d
JOIN jobs j ON j.id = d.job_id
"""

FAILURES = """
CREATE VIEW failures AS
SELECT f.study_uid AS study_uid,
       f.sop_uid AS sop_uid,
       f.file AS file,
       f.tier AS tier,
       f.status AS status,
       f.reason AS reason,
       f.last_seen_at AS last_seen
FROM failure_records f
WHERE f.resolved_at IS NULL
"""

VIEWS = {
    "savings_by_tier": SAVINGS_BY_TIER,
    "savings_by_study": SAVINGS_BY_STUDY,
    "quality_by_tier": QUALITY_BY_TIER,
    "lineage": LINEAGE,
    "failures": FAILURES,
}


def upgrade() -> None:
    for sql in VIEWS.values():
        op.execute(sql)


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
