"""Attempts at a study x tier: started, finished or failed, their owners' leases, and what a
finished one made.

Every write is one short transaction of upserts on natural keys, so any step can be retried,
and two workers on different tiers of one study touch disjoint rows apart from the study's
source rows, which both write in the same key order. Who owns a running attempt, and when it
counts as abandoned, is `dcmtier.catalogue.ownership`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlparse

from sqlalchemy import Connection, Row, func, select, update
from sqlalchemy.exc import IntegrityError

from dcmtier import owner
from dcmtier.catalogue import ownership, writes
from dcmtier.catalogue import results as rows_of
from dcmtier.catalogue.context import JobContext
from dcmtier.catalogue.models import (
    DerivedInstance,
    FailureRecord,
    Instance,
    Job,
    Package,
    TierRow,
    utcnow,
)
from dcmtier.catalogue.transactions import Transactions
from dcmtier.catalogue.upsert import upsert, upsert_returning_id
from dcmtier.errors import CatalogueError
from dcmtier.records import StudyTierResult
from dcmtier.tiers import Tier
from dcmtier.versions import software_versions

JOB_KEYS = ["study_uid", "tier", "dag_id", "run_id", "task_id", "map_index", "try_number"]


class Jobs(Transactions):
    """The ``jobs`` rows: one per attempt, with what it made and who owns it while it runs."""

    def start_job(
        self, study_uid: str, tier: Tier, context: JobContext, parameters: dict[str, Any]
    ) -> int:
        """Record an attempt at ``study_uid`` x ``tier`` as ``running``; return its job id.

        The same task instance and try again is the same row (restarted); a new try_number is
        a new row. The study must have been recorded with `record_study` first.
        """
        row = {
            "study_uid": study_uid,
            "tier": tier.name,
            "dag_id": context.dag_id,
            "run_id": context.run_id,
            "task_id": context.task_id,
            "map_index": context.map_index,
            "try_number": context.try_number,
            "status": "running",
            "error": None,
            "instances": None,
            "counts": None,
            "software": software_versions(),
            "parameters": json.loads(json.dumps(parameters, default=str, sort_keys=True)),
            "started_at": utcnow(),
            "finished_at": None,
            **ownership.owned_by(owner.current(), utcnow(), self.lease_s),
        }

        def write(connection: Connection) -> int:
            upsert(connection, TierRow, [rows_of.tier_row(tier)], keys=["name"])
            return upsert_returning_id(connection, Job, row, keys=JOB_KEYS)

        try:
            return self._write(write)
        except CatalogueError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise CatalogueError(
                    f"study {study_uid} is not in the catalogue: call record_study first"
                ) from exc
            raise

    def finish_job(self, job_id: int, result: StudyTierResult) -> None:
        """Record what the attempt made; the study x tier's derived, package and failure rows
        then describe this attempt, plus the instances it carried over from earlier attempts
        (``result.carried``: their rows stay) and the open failures of instances it did not
        process (idempotent)."""
        if result.status not in ("ok", "partial", "failed", "rejected"):
            raise CatalogueError(f"job {job_id}: unknown result status {result.status!r}")

        def write(connection: Connection) -> None:
            now = utcnow()
            _check_job(connection, job_id, result.study_uid, result.tier)
            derived = rows_of.derived_rows(result, job_id, now)
            writes.replace_derived(
                connection, result.study_uid, result.tier, derived, carried=result.carried
            )
            writes.replace_package(connection, result, rows_of.package_row(result, job_id, now))
            writes.replace_failures(
                connection, result.study_uid, result.tier,
                rows_of.failure_rows(result, job_id, now), rows_of.judged_keys(result),
            )  # fmt: skip
            connection.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status=result.status,
                    error=rows_of.job_summary(result),
                    instances=result.instances,
                    counts=dict(result.counts),
                    finished_at=now,
                )
            )

        self._write(write)

    def fail_job(self, job_id: int, error: str) -> None:
        """Mark an attempt ``failed`` for an infrastructure error; it shows in ``failures``."""

        def write(connection: Connection) -> None:
            now = utcnow()
            study_uid, tier = _check_job(connection, job_id)
            connection.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status="failed", error=error, finished_at=now)
            )
            row = rows_of.failure_row(
                study_uid, tier, job_id, now, key=rows_of.JOB_KEY,
                sop_uid=None, file=None, status="failed", reason=error, rule=None,
            )  # fmt: skip
            upsert(
                connection, FailureRecord, [row], keys=writes.FAILURE_KEY, keep=["first_seen_at"]
            )

        self._write(write)

    def pair_status(
        self, study_uids: Iterable[str], tiers: Iterable[str]
    ) -> dict[tuple[str, str], str]:
        """The latest attempt's status for each (study, tier) that has one.

        A ``running`` attempt whose owner is gone (`dcmtier.catalogue.ownership`) reads
        ``abandoned``, whether or not a run has marked it so yet.
        """
        wanted_tiers = sorted(set(tiers))
        uids = sorted(set(study_uids))

        def read(connection: Connection) -> dict[tuple[str, str], str]:
            found: dict[tuple[str, str], str] = {}
            now = utcnow()
            for chunk in writes.chunks(uids):
                latest = (
                    select(
                        Job.study_uid,
                        Job.tier,
                        Job.status,
                        *ownership.OWNER_COLUMNS,
                        func.row_number()
                        .over(
                            partition_by=(Job.study_uid, Job.tier),
                            order_by=(Job.started_at.desc(), Job.id.desc()),
                        )
                        .label("position"),
                    )
                    .where(Job.study_uid.in_(chunk), Job.tier.in_(wanted_tiers))
                    .subquery()
                )
                query = select(latest).where(latest.c.position == 1)
                for job in connection.execute(query):
                    found[(job.study_uid, job.tier)] = ownership.status_of(job, now)
            return found

        return self._run(read, what="reading attempts", write=False)

    def reap(self, study_uids: Iterable[str] | None = None) -> list[int]:
        """Mark ``abandoned`` the running attempts (of ``study_uids``, or all) whose owner is
        gone; they show in ``failures``. Their ids."""
        uids = None if study_uids is None else list(study_uids)
        return self._write(lambda c: ownership.reap(c, uids, utcnow()), what="ending abandoned")

    def renew(self, job_ids: Sequence[int]) -> int:
        """Extend the lease of the running ``job_ids`` (one try: the heartbeat comes again)."""
        ids = list(job_ids)
        return self._run(
            lambda c: ownership.renew(c, ids, utcnow(), self.lease_s),
            what="renewing leases", write=True, retry=False,
        )  # fmt: skip

    def interrupt_jobs(self, job_ids: Sequence[int], reason: str) -> None:
        """Mark the running ``job_ids`` ``interrupted`` (SIGINT, SIGTERM); shown in failures."""
        ids = list(job_ids)
        self._write(
            lambda c: ownership.end(c, ids, ownership.INTERRUPTED, reason, utcnow()),
            what="marking attempts interrupted",
        )

    def done_since(
        self, study_uid: str, inputs: Mapping[str, str], since: datetime
    ) -> dict[str, StudyTierResult]:
        """The tiers of ``study_uid`` that another attempt finished (``ok`` or ``partial``)
        after ``since`` from the same inputs (``inputs`` maps each tier to the digest its
        attempts record in their parameters), with what it made: work a concurrent run has
        just done."""
        names = sorted(inputs)

        def read(connection: Connection) -> dict[str, StudyTierResult]:
            query = (
                select(*Job.__table__.c)
                .where(Job.study_uid == study_uid, Job.tier.in_(names))
                .where(Job.status.in_(("ok", "partial")), Job.finished_at >= since)
                .order_by(Job.finished_at)
            )
            found = {}
            for job in connection.execute(query).all():
                if (job.parameters or {}).get("inputs") == inputs[job.tier]:
                    found[job.tier] = _made_by(connection, job)
            return found

        return self._run(read, what="reading finished attempts", write=False)


def _check_job(
    connection: Connection, job_id: int, study_uid: str | None = None, tier: str | None = None
) -> tuple[str, str]:
    found = connection.execute(select(Job.study_uid, Job.tier).where(Job.id == job_id)).first()
    if found is None:
        raise CatalogueError(f"no job {job_id} in the catalogue: call start_job first")
    if study_uid is not None and (found.study_uid, found.tier) != (study_uid, tier):
        raise CatalogueError(
            f"job {job_id} is study {found.study_uid} tier {found.tier}, "
            f"not study {study_uid} tier {tier}"
        )
    return found.study_uid, found.tier


def _made_by(connection: Connection, job: Row[Any]) -> StudyTierResult:
    """What a finished attempt made, as `process_study` would have returned it (no per-instance
    results: those stay in its own run)."""
    totals = connection.execute(
        select(
            func.coalesce(func.sum(DerivedInstance.pixel_bytes_in), 0),
            func.coalesce(func.sum(DerivedInstance.pixel_bytes_out), 0),
            func.coalesce(func.sum(Instance.bytes), 0),
            func.coalesce(func.sum(DerivedInstance.bytes), 0),
        )
        .join(Instance, Instance.sop_uid == DerivedInstance.source_sop_uid)
        .where(DerivedInstance.study_uid == job.study_uid, DerivedInstance.tier == job.tier)
    ).one()
    package = connection.execute(
        select(Package.uri, Package.bytes, Package.sha256).where(
            Package.study_uid == job.study_uid, Package.tier == job.tier
        )
    ).first()
    return StudyTierResult(
        study_uid=job.study_uid,
        tier=job.tier,
        status=job.status,
        run_id=job.run_id,
        instances=job.instances or 0,
        counts=dict(job.counts or {}),
        pixel_bytes_in=int(totals[0]),
        pixel_bytes_out=int(totals[1]),
        file_bytes_in=int(totals[2]),
        file_bytes_out=int(totals[3]),
        package=_path_of(package.uri) if package else None,
        package_bytes=package.bytes if package else None,
        package_sha256=package.sha256 if package else None,
        done_by=f"run {job.run_id} (job {job.id})",
    )


def _path_of(uri: str) -> str:
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri
