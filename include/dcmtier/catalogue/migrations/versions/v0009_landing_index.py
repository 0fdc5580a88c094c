"""The landing index, claims on planned work, and the ``backlog`` view.

- ``landing_files``: one row per file of a landing area with what discovery read from its
  header (UIDs, StudyDate, Modality, or the read error), its file key (``file_key``: the SOP
  Instance UID, else a content hash, worked out when the header is read), its size,
  modification time and ETag (what says it changed), first and last seen, and ``gone_at`` once
  it is no longer listed. Discovery reads a header only for a new or changed file. It holds
  landing paths: an operator table, like ``file_locations`` (0005).
- ``claims``: a study x tier planned by a run, so that two runs planning at once (overlapping
  backfill runs) never take the same pair; released when the pair finishes or the run ends
  (or is gone), reclaimable after ``expires_at``.
- ``backlog``: every study present in the landing area with tiers not done (counted against
  every tier a run has asked for, the ``tiers`` table), the StudyDate, its arrival (newest
  file's modification time) and since when discovery knows it. No paths. A tier is not done
  when it has no attempt, or when its latest attempt never finished: ``abandoned`` or
  ``interrupted`` (0006), or ``running`` with its lease expired (an owner gone that no run has
  marked yet, as the ``failures`` view reads it). A finished attempt is done whatever its
  outcome: ``ok``, ``partial``, ``failed`` (those show in ``failures``) and ``rejected`` (0007:
  every output rejected by the quality gate, a final quality outcome). These are the pairs a
  run with ``reprocess`` none takes again.

On PostgreSQL, as 0005 does for its objects: ``dcmtier_operator`` may read both tables and the
view, ``dcmtier_analyst`` the view only (UIDs, dates, counts), and PUBLIC neither table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations import roles

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("landing_files", "claims")  # landing paths and run bookkeeping: operators only
VIEW = "backlog"

BACKLOG = """
CREATE VIEW backlog AS
WITH present AS (
    SELECT study_uid,
           MIN(study_date) AS study_date,
           MAX(modified) AS arrival,
           MIN(first_seen_at) AS waiting_since
    FROM landing_files
    WHERE gone_at IS NULL AND study_uid IS NOT NULL
    GROUP BY study_uid
)
SELECT p.study_uid AS study_uid,
       p.study_date AS study_date,
       p.arrival AS arrival,
       COUNT(*) AS tiers_pending,
       p.waiting_since AS waiting_since
FROM present p
CROSS JOIN tiers t
WHERE NOT EXISTS (
    SELECT 1
    FROM jobs j
    WHERE j.id = (
        SELECT l.id
        FROM jobs l
        WHERE l.study_uid = p.study_uid AND l.tier = t.name
        ORDER BY l.started_at DESC, l.id DESC
        LIMIT 1
    )
    AND j.status NOT IN ('abandoned', 'interrupted')
    AND NOT (
        j.status = 'running'
        AND (j.lease_expires_at IS NULL OR j.lease_expires_at < CURRENT_TIMESTAMP)
    )
)
GROUP BY p.study_uid, p.study_date, p.arrival, p.waiting_since
"""


def upgrade() -> None:
    op.create_table(
        "landing_files",
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("etag", sa.String(128), nullable=True),
        sa.Column("file_key", sa.String(64), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=True),
        sa.Column("series_uid", sa.String(64), nullable=True),
        sa.Column("sop_uid", sa.String(64), nullable=True),
        sa.Column("study_date", sa.Date(), nullable=True),
        sa.Column("modality", sa.String(16), nullable=True),
        sa.Column("read_error", sa.Text(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("uri", name=op.f("pk_landing_files")),
    )
    op.create_index(op.f("ix_landing_files_study_uid"), "landing_files", ["study_uid"])
    op.create_index(op.f("ix_landing_files_study_date"), "landing_files", ["study_date"])
    op.create_table(
        "claims",
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("study_uid", "tier", name=op.f("pk_claims")),
    )
    op.execute(BACKLOG)
    roles.grant([VIEW], TABLES)


def downgrade() -> None:
    roles.revoke([VIEW], TABLES)
    op.execute("DROP VIEW backlog")
    op.drop_table("claims")
    op.drop_index(op.f("ix_landing_files_study_date"), table_name="landing_files")
    op.drop_index(op.f("ix_landing_files_study_uid"), table_name="landing_files")
    op.drop_table("landing_files")
