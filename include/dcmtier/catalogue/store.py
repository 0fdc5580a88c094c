"""The catalogue's public API: what the unit of work and the Airflow tasks call.

Every write is one short transaction of upserts on natural keys, so any step can be retried,
and two workers on different tiers of one study touch disjoint rows apart from the study's
source rows, which both write in the same key order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, Row, func, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dcmtier import owner
from dcmtier.catalogue import landing, ownership, schema, selection, writes
from dcmtier.catalogue import results as rows_of
from dcmtier.catalogue.context import JobContext
from dcmtier.catalogue.holds import Holds, holds_for
from dcmtier.catalogue.models import (
    Base,
    DerivedInstance,
    FailureRecord,
    FileLocation,
    Instance,
    Job,
    Package,
    Series,
    Study,
    TierRow,
    UnidentifiedFile,
    utcnow,
)
from dcmtier.catalogue.retry import GaveUp, Retry, first_line
from dcmtier.catalogue.sources import location_row, source_rows
from dcmtier.catalogue.upsert import upsert, upsert_returning_id
from dcmtier.errors import CatalogueError
from dcmtier.records import FAILED, StudyTierResult, Unidentified
from dcmtier.records import Study as SourceStudy
from dcmtier.tiers import TIERS, Tier
from dcmtier.versions import software_versions

if TYPE_CHECKING:
    from dcmtier.records import Known

T = TypeVar("T")
LOCATION_KEYS = ["file_key", "uri"]
# every view the migrations make, in the README's order; `dcmtier report` shows the first two
VIEWS = (
    "savings_by_tier", "quality_by_tier", "savings_by_study", "lineage", "failures", "backlog",
    "delivery_by_tier",
)  # fmt: skip
REPORT_VIEWS = VIEWS[:2]


class Catalogue:
    """Lineage and storage savings of every study x tier, in PostgreSQL or SQLite."""

    def __init__(
        self, engine: Engine, *, retry: Retry | None = None, lease_s: float | None = None
    ) -> None:
        self._engine = engine
        self._retry = retry or Retry.from_environment()
        self.lease_s = float(lease_s or owner.lease_seconds())

    @classmethod
    def connect(cls, url: str) -> Catalogue:
        """Open the catalogue at ``url``.

        Raises
        ------
        CatalogueError
            The database is unreachable or its schema is not at this code's head revision
            (the message says to run ``dcmtier db upgrade``).
        """
        return cls(schema.engine_at_head(url))

    @staticmethod
    def upgrade(url: str, revision: str = "head") -> None:
        """Apply the migrations (``dcmtier db upgrade``)."""
        schema.upgrade(url, revision)

    @staticmethod
    def downgrade(url: str, revision: str = "base") -> None:
        """Revert the migrations; ``base`` drops every catalogue table and view."""
        schema.downgrade(url, revision)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for ad-hoc queries of the views."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()

    def record_study(self, study: SourceStudy, known: Mapping[Path, Known] | None = None) -> None:
        """Upsert the study, its series and instances, read from headers, and where each of
        its files was found (idempotent); the files in ``known`` are not read again."""
        found = source_rows(study, utcnow(), known)

        def write(connection: Connection) -> None:
            upsert(connection, Study, [found.study], keys=["study_uid"], keep=["first_seen_at"])
            upsert(connection, Series, found.series, keys=["series_uid"])
            upsert(connection, Instance, found.instances, keys=["sop_uid"], keep=["discovered_at"])
            upsert(connection, FileLocation, found.locations, keys=LOCATION_KEYS,
                   keep=["first_seen_at"])  # fmt: skip

        self._write(write)

    def record_locations(self, found: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Record that each (file key, URI) of ``found`` was seen now; return each one's id.

        The ids are what discovery's manifests hold instead of locations (`locations`).
        """
        now = utcnow()
        rows = [location_row(key, uri, now) for key, uri in found]

        def write(connection: Connection) -> dict[tuple[str, str], int]:
            upsert(connection, FileLocation, rows, keys=LOCATION_KEYS, keep=["first_seen_at"])
            return self._location_ids(connection, {(r["file_key"], r["uri"]) for r in rows})

        return self._write(write)

    @staticmethod
    def _location_ids(
        connection: Connection, pairs: set[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        ids: dict[tuple[str, str], int] = {}
        table = FileLocation.__table__.c
        for chunk in writes.chunks(sorted({key for key, _ in pairs})):
            query = select(table.file_key, table.uri, table.id).where(table.file_key.in_(chunk))
            for key, uri, location_id in connection.execute(query):
                if (key, uri) in pairs:
                    ids[(key, uri)] = int(location_id)
        return ids

    def locations(self, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """(file key, URI) of each location id that exists."""
        found: dict[int, tuple[str, str]] = {}
        table = FileLocation.__table__.c
        with self._read() as connection:
            for chunk in writes.chunks(sorted(set(ids))):
                query = select(table.id, table.file_key, table.uri).where(table.id.in_(chunk))
                for location_id, key, uri in connection.execute(query):
                    found[int(location_id)] = (key, uri)
        return found

    def locate(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Every recorded location of each file key (``dcmtier locate``), newest first."""
        table = FileLocation.__table__.c
        rows: list[dict[str, Any]] = []
        with self._read() as connection:
            for chunk in writes.chunks(sorted(set(keys))):
                query = (
                    select(table.file_key, table.uri, table.first_seen_at, table.last_seen_at)
                    .where(table.file_key.in_(chunk))
                    .order_by(table.file_key, table.last_seen_at.desc(), table.uri)
                )
                rows += [dict(r) for r in connection.execute(query).mappings()]
        return rows

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
        keys = ["study_uid", "tier", "dag_id", "run_id", "task_id", "map_index", "try_number"]

        def write(connection: Connection) -> int:
            upsert(connection, TierRow, [rows_of.tier_row(tier)], keys=["name"])
            return upsert_returning_id(connection, Job, row, keys=keys)

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
            self._check_job(connection, job_id, result.study_uid, result.tier)
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
            study_uid, tier = self._check_job(connection, job_id)
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

    def record_unidentified(self, scope: str, files: Sequence[Unidentified]) -> None:
        """Record the files under ``scope`` (a landing URI prefix) that belong to no study.

        Each ``failed`` one shows in ``failures`` by its file key, with its reason; a
        ``skipped`` one (not DICOM, a DICOMDIR) is no fault and only has its location
        recorded, as every file's goes to ``file_locations`` (`dcmtier locate` finds the key
        the output printed). Failures found under ``scope`` earlier and absent from the failed
        ``files`` are marked resolved.
        """
        failed = [f for f in files if f.status == FAILED]

        def write(connection: Connection) -> None:
            now = utcnow()
            rows = [
                {"file": f.key, "reason": f.reason, "first_seen_at": now, "last_seen_at": now,
                 "resolved_at": None}
                for f in failed
            ]  # fmt: skip
            upsert(connection, UnidentifiedFile, rows, keys=["file"], keep=["first_seen_at"])
            locations = [location_row(f.key, f.uri, now) for f in files]
            upsert(connection, FileLocation, locations, keys=LOCATION_KEYS, keep=["first_seen_at"])
            place = FileLocation.__table__.c
            under_scope = select(place.file_key).where(
                func.substr(place.uri, 1, len(scope)) == scope
            )
            table = UnidentifiedFile.__table__
            stale = (
                update(UnidentifiedFile)
                .where(table.c.resolved_at.is_(None))
                .where(table.c.file.in_(under_scope))
                .values(resolved_at=now)
            )
            if failed:
                stale = stale.where(table.c.file.not_in(sorted({f.key for f in failed})))
            connection.execute(stale)

        self._write(write)

    def landing_states(self, prefixes: Sequence[str]) -> dict[str, landing.FileState]:
        """The landing index's rows under ``prefixes``: what a new listing is compared with."""
        with self._read() as connection:
            return landing.states(connection, prefixes)

    def update_landing(
        self,
        read: Iterable[landing.FileHeader],
        gone: Sequence[str],
        prefixes: Sequence[str],
        now: datetime,
    ) -> None:
        """Record the headers just read, mark ``gone`` files, and every other present file
        under ``prefixes`` as seen ``now``; one transaction."""

        def write(connection: Connection) -> None:
            landing.touch(connection, prefixes, now)
            landing.write(connection, read, now)
            landing.mark_gone(connection, gone, now)

        self._write(write)

    def claim_work(self, request: selection.Selection) -> selection.Selected:
        """Choose and claim a run's study x tier pairs on the landing index (one transaction;
        see ``dcmtier.catalogue.selection``). The tiers asked for are recorded in ``tiers``,
        which the ``backlog`` view counts pending tiers against."""

        def write(connection: Connection) -> selection.Selected:
            rows = [rows_of.tier_row(TIERS[name]) for name in request.tiers]
            upsert(connection, TierRow, rows, keys=["name"])
            return selection.select_and_claim(connection, request)

        return self._write(write)

    def release_claims(self, run_id: str, pairs: Sequence[tuple[str, str]] = ()) -> int:
        """Release ``run_id``'s claims (only ``pairs`` when given); return how many."""
        return self._write(lambda connection: selection.release(connection, run_id, pairs))

    def landing_files(
        self, study_uids: Sequence[str], scopes: Sequence[str]
    ) -> dict[str, list[landing.IndexedFile]]:
        """Each present landing file of each study (URI, file key, SOP Instance UID)."""
        with self._read() as connection:
            return landing.files_of(connection, study_uids, scopes)

    def landing_study_count(self, scopes: Sequence[str]) -> int:
        """Studies with a present landing file under ``scopes``."""
        with self._read() as connection:
            return landing.study_count(connection, scopes)

    def landing_unidentified(self, scopes: Sequence[str]) -> list[landing.IndexedFile]:
        """Present landing files under ``scopes`` without a study (with their read errors)."""
        with self._read() as connection:
            return landing.unidentified(connection, scopes)

    def backlog(self, limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """How many studies the ``backlog`` view holds, and its first ``limit`` rows (longest
        waiting first)."""
        rows = text("SELECT * FROM backlog ORDER BY waiting_since, study_uid LIMIT :n")
        with self._read() as connection:
            count = int(connection.execute(text("SELECT count(*) FROM backlog")).scalar_one())
            first = [dict(r) for r in connection.execute(rows, {"n": limit}).mappings()]
        return count, first

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

    def holds(self) -> Holds:
        """This process's exclusive holds on study x tier pairs of this catalogue."""
        return holds_for(self._engine)

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

    def report(self, views: Sequence[str] = REPORT_VIEWS) -> dict[str, list[dict[str, Any]]]:
        """The rows of each of ``views`` (names from ``VIEWS``), in tier-table order."""
        unknown = sorted(set(views) - set(VIEWS))
        if unknown:
            raise CatalogueError(f"no view {unknown[0]!r}; the views: {', '.join(VIEWS)}")
        order = {name: index for index, name in enumerate(TIERS)}

        def key(row: Mapping[str, Any]) -> tuple[Any, ...]:
            tier = row.get("tier") or ""
            rest = (row.get(c) for c in ("study_uid", "source_sop_uid", "sop_uid", "file"))
            return (order.get(tier, len(order)), tier, *("" if v is None else str(v) for v in rest))

        def read(connection: Connection) -> dict[str, list[dict[str, Any]]]:
            out: dict[str, list[dict[str, Any]]] = {}
            for view in views:
                found = connection.execute(text(f"SELECT * FROM {view}")).mappings()
                out[view] = sorted((dict(r) for r in found), key=key)
            return out

        return self._run(read, what="reading the views", write=False)

    def row_counts(self) -> dict[str, int]:
        """Rows in each catalogue table (what a rerun must leave unchanged)."""

        def read(connection: Connection) -> dict[str, int]:
            return {
                table.name: int(
                    connection.execute(select(func.count()).select_from(table)).scalar_one()
                )
                for table in Base.metadata.sorted_tables
            }

        return self._run(read, what="counting rows", write=False)

    @staticmethod
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

    def _write(self, work: Callable[[Connection], T], *, what: str = "writing") -> T:
        """Run ``work`` in one transaction, again after a transient error (`retry`)."""
        return self._run(work, what=what, write=True)

    def _run(
        self, work: Callable[[Connection], T], *, what: str, write: bool, retry: bool = True
    ) -> T:
        def once() -> T:
            if write:
                with self._engine.begin() as connection:
                    return work(connection)
            with self._engine.connect() as connection:
                return work(connection)

        try:
            if not retry:
                return once()
            return self._retry.run(once, what=what, where=self.url)
        except GaveUp as exc:
            raise CatalogueError(f"catalogue at {self.url} unreachable, {what}: {exc}") from exc
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for a read that is not retried (operator look-ups)."""
        try:
            with self._engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: SQLAlchemyError) -> CatalogueError:
        return CatalogueError(f"catalogue at {self.url}: {first_line(exc)}")


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
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri
