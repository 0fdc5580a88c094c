"""Files without a StudyInstanceUID, and the ``failures`` view that shows them too.

A file in the landing area whose header gives no StudyInstanceUID (not DICOM, truncated, no
file meta) belongs to no study and no tier; operators still look for it in ``failures``, where
it appears with a NULL study_uid and tier. Columns of the view are unchanged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations.versions.v0002_views import FAILURES as FAILURES_0002

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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
UNION ALL
SELECT NULL AS study_uid,
       NULL AS sop_uid,
       u.file AS file,
       NULL AS tier,
       'failed' AS status,
       u.reason AS reason,
       u.last_seen_at AS last_seen
FROM unidentified_files u
WHERE u.resolved_at IS NULL
"""


def upgrade() -> None:
    op.create_table(
        "unidentified_files",
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("file", name=op.f("pk_unidentified_files")),
    )
    op.execute("DROP VIEW failures")
    op.execute(FAILURES)


def downgrade() -> None:
    op.execute("DROP VIEW failures")
    op.execute(FAILURES_0002)
    op.drop_table("unidentified_files")
