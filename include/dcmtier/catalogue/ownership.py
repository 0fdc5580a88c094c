"""Owners and leases of attempts: who runs a job, whether it still does, and ending those
whose owner is gone.

A ``running`` job's owner is gone when its lease expired, or when it ran on this host and its
process (pid and start time) no longer exists. Such a job is ``abandoned``; a job stopped by
SIGINT or SIGTERM is ``interrupted``. Both count as not done, and both show in ``failures``
until a later attempt at the same study x tier finishes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, select, update

from dcmtier.catalogue import results as rows_of
from dcmtier.catalogue.models import FailureRecord, Job
from dcmtier.catalogue.upsert import upsert
from dcmtier.catalogue.writes import FAILURE_KEY, chunks
from dcmtier.owner import Owner

RUNNING, ABANDONED, INTERRUPTED = "running", "abandoned", "interrupted"
NOT_DONE = frozenset({ABANDONED, INTERRUPTED})  # always made again, whatever ``reprocess`` says
OWNER_COLUMNS = (Job.owner_host, Job.owner_pid, Job.owner_start, Job.lease_expires_at)


def owned_by(owner: Owner, now: datetime, lease_s: float) -> dict[str, Any]:
    """The job columns that name ``owner`` and start its lease."""
    return {
        "owner_host": owner.host,
        "owner_pid": owner.pid,
        "owner_start": owner.start,
        "lease_expires_at": now + timedelta(seconds=lease_s),
    }


def gone_reason(job: Row[Any] | Any, now: datetime) -> str | None:
    """Why a running job's owner is gone; None while it may still be working."""
    who = f"owner {job.owner_host or '?'} pid {job.owner_pid if job.owner_pid else '?'}"
    if job.owner_host and job.owner_pid:
        gone = Owner(job.owner_host, job.owner_pid, job.owner_start or 0).is_gone()
        if gone:
            return f"{who} is no longer running"
    if job.lease_expires_at is None or job.lease_expires_at < now:
        return f"{who} stopped renewing its lease"
    return None


def status_of(job: Row[Any] | Any, now: datetime) -> str:
    """The job's status, ``abandoned`` for a running one whose owner is gone."""
    if job.status == RUNNING and gone_reason(job, now) is not None:
        return ABANDONED
    return str(job.status)


def renew(connection: Connection, job_ids: Sequence[int], now: datetime, lease_s: float) -> int:
    """Extend the lease of those ``job_ids`` still running; how many were."""
    expires = now + timedelta(seconds=lease_s)
    renewed = 0
    for chunk in chunks(sorted(job_ids)):
        done = connection.execute(
            update(Job)
            .where(Job.id.in_(chunk), Job.status == RUNNING)
            .values(lease_expires_at=expires)
        )
        renewed += done.rowcount
    return renewed


def reap(connection: Connection, study_uids: Iterable[str] | None, now: datetime) -> list[int]:
    """Mark ``abandoned`` the running jobs (of ``study_uids``, or all) whose owner is gone."""
    query = select(Job.id, Job.study_uid, Job.tier, Job.status, *OWNER_COLUMNS).where(
        Job.status == RUNNING
    )
    if study_uids is not None:
        query = query.where(Job.study_uid.in_(sorted(set(study_uids))))
    ended = []
    for job in connection.execute(query.order_by(Job.id)).all():
        reason = gone_reason(job, now)
        if reason is not None:
            end(connection, [job.id], ABANDONED, f"abandoned: {reason}", now)
            ended.append(int(job.id))
    return ended


def end(
    connection: Connection, job_ids: Sequence[int], status: str, reason: str, now: datetime
) -> None:
    """End running ``job_ids`` as ``abandoned`` or ``interrupted``; each shows in failures."""
    for chunk in chunks(sorted(job_ids)):
        jobs = connection.execute(
            select(Job.id, Job.study_uid, Job.tier).where(Job.id.in_(chunk), Job.status == RUNNING)
        ).all()
        if not jobs:
            continue
        connection.execute(
            update(Job)
            .where(Job.id.in_([j.id for j in jobs]), Job.status == RUNNING)
            .values(status=status, error=reason, finished_at=now)
        )
        rows = [
            rows_of.failure_row(
                j.study_uid,
                j.tier,
                j.id,
                now,
                key=rows_of.JOB_KEY,
                sop_uid=None,
                file=None,
                status=status,
                reason=reason,
                rule=None,
            )
            for j in jobs
        ]
        upsert(connection, FailureRecord, rows, keys=FAILURE_KEY, keep=["first_seen_at"])
