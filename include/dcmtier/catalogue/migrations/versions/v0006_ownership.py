"""Attempts have owners and leases; ``abandoned`` and ``interrupted`` attempts show in failures.

``jobs`` gains ``owner_host``, ``owner_pid``, ``owner_start`` (the process's start in clock
ticks since boot) and ``lease_expires_at``, which the owner renews while it works, and an index
on ``status``. Job and failure statuses gain ``abandoned`` (the owner died without a word: its
pid is gone, or its lease expired) and ``interrupted`` (stopped by SIGINT or SIGTERM).

Attempts left ``running`` by earlier versions have no owner to ask: their lease is set to their
start, so they read as abandoned and the next discovery makes that study x tier again.

The ``failures`` view also lists ``running`` attempts whose lease has expired (before any run
has marked them abandoned); its columns are unchanged. SQLite cannot change a CHECK
constraint in place: both tables are copied (batch mode) with the views dropped meanwhile. On
PostgreSQL the two views made again get back the grants 0005 gave the analyst and operator
roles.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations import roles
from dcmtier.catalogue.migrations.versions.v0003_unidentified import FAILURES as FAILURES_0003
from dcmtier.catalogue.migrations.versions.v0004_lineage_strategy import LINEAGE

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOBS_BEFORE = ("running", "ok", "partial", "failed")
JOBS_AFTER = (*JOBS_BEFORE, "abandoned", "interrupted")
FAILURES_BEFORE = ("failed", "refused", "gate_failed")
FAILURES_AFTER = (*FAILURES_BEFORE, "abandoned", "interrupted")

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
SELECT j.study_uid AS study_uid,
       NULL AS sop_uid,
       NULL AS file,
       j.tier AS tier,
       'abandoned' AS status,
       'owner ' || COALESCE(j.owner_host, '?') || ' pid '
           || COALESCE(CAST(j.owner_pid AS VARCHAR(20)), '?')
           || ' stopped renewing its lease (run ' || j.run_id || ')' AS reason,
       j.lease_expires_at AS last_seen
FROM jobs j
WHERE j.status = 'running' AND j.lease_expires_at < CURRENT_TIMESTAMP
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

_jobs = sa.table(
    "jobs",
    sa.column("status", sa.String(16)),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("lease_expires_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.execute("DROP VIEW failures")
    op.execute("DROP VIEW lineage")
    op.add_column("jobs", sa.Column("owner_host", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("owner_pid", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("owner_start", sa.BigInteger(), nullable=True))
    op.add_column("jobs", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_jobs_status"), "jobs", ["status"])
    _statuses(JOBS_AFTER, FAILURES_AFTER)
    op.execute(
        _jobs.update()
        .where(_jobs.c.status == "running")
        .values(lease_expires_at=_jobs.c.started_at)
    )
    op.execute(LINEAGE)
    op.execute(FAILURES)
    roles.grant(("lineage", "failures"))


def downgrade() -> None:
    op.execute("DROP VIEW failures")
    op.execute("DROP VIEW lineage")
    for table, before in (("jobs", JOBS_BEFORE), ("failure_records", FAILURES_BEFORE)):
        # the earlier statuses cannot hold the new words: such attempts read as failed
        rows = sa.table(table, sa.column("status", sa.String(16)))
        op.execute(rows.update().where(rows.c.status.not_in(before)).values(status="failed"))
    _statuses(JOBS_BEFORE, FAILURES_BEFORE)
    op.drop_index(op.f("ix_jobs_status"), "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("lease_expires_at", "owner_start", "owner_pid", "owner_host"):
            batch.drop_column(column)
    op.execute(LINEAGE)
    op.execute(FAILURES_0003)
    roles.grant(("lineage", "failures"))


def _statuses(jobs: tuple[str, ...], failures: tuple[str, ...]) -> None:
    for table, allowed in (("jobs", jobs), ("failure_records", failures)):
        name = op.f(f"ck_{table}_status")
        condition = f"status IN {allowed!r}"
        with op.batch_alter_table(table, recreate="auto") as batch:
            batch.drop_constraint(name, type_="check")
            batch.create_check_constraint(name, condition)
