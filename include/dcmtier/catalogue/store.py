"""The catalogue's public API: what the unit of work and the Airflow tasks call.

Every write is one short transaction of upserts on natural keys, so any step can be retried,
and two workers on different tiers of one study touch disjoint rows apart from the study's
source rows, which both write in the same key order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from dcmtier.catalogue import landing, schema, selection, writes
from dcmtier.catalogue import results as rows_of
from dcmtier.catalogue.context import JobContext
from dcmtier.catalogue.models import (
    Base,
    FailureRecord,
    FileLocation,
    Instance,
    Job,
    Series,
    Study,
    TierRow,
    UnidentifiedFile,
    utcnow,
)
from dcmtier.catalogue.sources import location_row, source_rows
from dcmtier.catalogue.upsert import upsert, upsert_returning_id
from dcmtier.errors import CatalogueError
from dcmtier.records import Study as SourceStudy
from dcmtier.records import StudyTierResult, Unidentified
from dcmtier.tiers import TIERS, Tier
from dcmtier.versions import software_versions

T = TypeVar("T")
RETRIED_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
ATTEMPTS = 3
REPORT_VIEWS = ("savings_by_tier", "quality_by_tier")
LOCATION_KEYS = ["file_key", "uri"]


class Catalogue:
    """Lineage and storage savings of every study x tier, in PostgreSQL or SQLite."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

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

    def record_study(self, study: SourceStudy) -> None:
        """Upsert the study, its series and instances, read from headers, and where each of
        its files was found (idempotent)."""
        found = source_rows(study, utcnow())

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
        then describe this attempt only (idempotent)."""
        if result.status not in ("ok", "partial", "failed"):
            raise CatalogueError(f"job {job_id}: unknown result status {result.status!r}")

        def write(connection: Connection) -> None:
            now = utcnow()
            self._check_job(connection, job_id, result.study_uid, result.tier)
            derived = rows_of.derived_rows(result, job_id, now)
            writes.replace_derived(connection, result.study_uid, result.tier, derived)
            writes.replace_package(connection, result, rows_of.package_row(result, job_id, now))
            writes.replace_failures(
                connection, result.study_uid, result.tier, rows_of.failure_rows(result, job_id, now)
            )
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

        Each shows in ``failures`` by its file key, with its reason; its location goes to
        ``file_locations``. Files found under ``scope`` earlier and absent from ``files`` are
        marked resolved.
        """

        def write(connection: Connection) -> None:
            now = utcnow()
            rows = [
                {"file": f.key, "reason": f.reason, "first_seen_at": now, "last_seen_at": now,
                 "resolved_at": None}
                for f in files
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
            if files:
                stale = stale.where(table.c.file.not_in(sorted({f.key for f in files})))
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
        """The latest attempt's status for each (study, tier) that has one."""
        wanted_tiers = sorted(set(tiers))
        found: dict[tuple[str, str], str] = {}
        with self._read() as connection:
            for chunk in writes.chunks(sorted(set(study_uids))):
                latest = (
                    select(
                        Job.study_uid,
                        Job.tier,
                        Job.status,
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
                query = select(latest.c.study_uid, latest.c.tier, latest.c.status).where(
                    latest.c.position == 1
                )
                for study_uid, tier, status in connection.execute(query):
                    found[(study_uid, tier)] = status
        return found

    def report(self) -> dict[str, list[dict[str, Any]]]:
        """``savings_by_tier`` and ``quality_by_tier``, rows in tier-table order."""
        order = {name: index for index, name in enumerate(TIERS)}
        out: dict[str, list[dict[str, Any]]] = {}
        with self._read() as connection:
            for view in REPORT_VIEWS:
                found = [
                    dict(r) for r in connection.execute(text(f"SELECT * FROM {view}")).mappings()
                ]
                out[view] = sorted(
                    found, key=lambda r: (order.get(r["tier"], len(order)), r["tier"])
                )
        return out

    def row_counts(self) -> dict[str, int]:
        """Rows in each catalogue table (what a rerun must leave unchanged)."""
        with self._read() as connection:
            return {
                table.name: int(
                    connection.execute(select(func.count()).select_from(table)).scalar_one()
                )
                for table in Base.metadata.sorted_tables
            }

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

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction, again after a deadlock or serialization failure."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._engine.begin() as connection:
                    return work(connection)
            except DBAPIError as exc:
                state = getattr(exc.orig, "sqlstate", None)
                if state in RETRIED_SQLSTATES and attempt < ATTEMPTS:
                    time.sleep(0.05 * attempt)
                    continue
                raise self._error(exc) from exc
            except SQLAlchemyError as exc:
                raise self._error(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: SQLAlchemyError) -> CatalogueError:
        orig = getattr(exc, "orig", None) or exc
        line = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        return CatalogueError(f"catalogue at {self.url}: {line}")
