"""What was found where: studies read from their headers, every file's locations, and the
files that belong to no study.

A file's locations are keyed by its file key (``dcmtier.records.file_key``), never its URI
alone, so `dcmtier locate` finds every place a key was seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, update

from dcmtier.catalogue.models import FileLocation, Instance, Series, Study, UnidentifiedFile, utcnow
from dcmtier.catalogue.sources import location_row, source_rows
from dcmtier.catalogue.transactions import Transactions
from dcmtier.catalogue.upsert import upsert
from dcmtier.catalogue.writes import chunks
from dcmtier.records import FAILED, Unidentified
from dcmtier.records import Study as SourceStudy

if TYPE_CHECKING:
    from dcmtier.records import Known

LOCATION_KEYS = ["file_key", "uri"]


class Inventory(Transactions):
    """Studies, series and instances as found, and where each file was seen."""

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
            return _location_ids(connection, {(r["file_key"], r["uri"]) for r in rows})

        return self._write(write)

    def locations(self, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """(file key, URI) of each location id that exists."""
        found: dict[int, tuple[str, str]] = {}
        table = FileLocation.__table__.c
        with self._read() as connection:
            for chunk in chunks(sorted(set(ids))):
                query = select(table.id, table.file_key, table.uri).where(table.id.in_(chunk))
                for location_id, key, uri in connection.execute(query):
                    found[int(location_id)] = (key, uri)
        return found

    def locate(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Every recorded location of each file key (``dcmtier locate``), newest first."""
        table = FileLocation.__table__.c
        rows: list[dict[str, Any]] = []
        with self._read() as connection:
            for chunk in chunks(sorted(set(keys))):
                query = (
                    select(table.file_key, table.uri, table.first_seen_at, table.last_seen_at)
                    .where(table.file_key.in_(chunk))
                    .order_by(table.file_key, table.last_seen_at.desc(), table.uri)
                )
                rows += [dict(r) for r in connection.execute(query).mappings()]
        return rows

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


def _location_ids(
    connection: Connection, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    ids: dict[tuple[str, str], int] = {}
    table = FileLocation.__table__.c
    for chunk in chunks(sorted({key for key, _ in pairs})):
        query = select(table.file_key, table.uri, table.id).where(table.file_key.in_(chunk))
        for key, uri, location_id in connection.execute(query):
            if (key, uri) in pairs:
                ids[(key, uri)] = int(location_id)
    return ids
