"""The landing index: one row per landing-area file, with what its header said.

Discovery compares a listing with these rows and reads headers only for files that are new or
changed (size, modification time or ETag); a file no longer listed is marked gone. Rows are
found by URI prefix (a landing area's scope, or one of its date prefixes). Each row keeps the
file's key (``dcmtier.records.file_key``), worked out when its header was read: what a file is
called everywhere outside the operators' tables, since its URI may carry a patient's name.
The functions take a connection; `LandingIndex` is the catalogue's API over them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, false, func, or_, select, update

from dcmtier.catalogue.models import LandingFile
from dcmtier.catalogue.transactions import Transactions
from dcmtier.catalogue.upsert import upsert
from dcmtier.catalogue.writes import chunks

FILES = LandingFile.__table__


@dataclass(frozen=True)
class FileState:
    """What says whether a file changed since its header was read."""

    size: int
    modified: datetime
    etag: str | None
    gone: bool


@dataclass(frozen=True)
class FileHeader:
    """One file as listed, with its file key and what its header gave (or why it could not be
    read)."""

    uri: str
    size: int
    modified: datetime
    file_key: str
    etag: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None
    study_date: date | None = None
    modality: str | None = None
    read_error: str | None = None


def under(prefixes: Sequence[str]) -> ColumnElement[bool]:
    """Rows whose URI starts with one of ``prefixes`` (``LIKE`` would read ``%`` and ``_``)."""
    if not prefixes:
        return false()
    return or_(*(func.substr(FILES.c.uri, 1, len(p)) == p for p in prefixes))


def states(connection: Connection, prefixes: Sequence[str]) -> dict[str, FileState]:
    """The indexed state of every file under ``prefixes``, gone ones included."""
    query = select(
        FILES.c.uri, FILES.c.size, FILES.c.modified, FILES.c.etag, FILES.c.gone_at
    ).where(under(prefixes))
    return {
        uri: FileState(size, modified, etag, gone is not None)
        for uri, size, modified, etag, gone in connection.execute(query)
    }


def write(connection: Connection, headers: Iterable[FileHeader], now: datetime) -> None:
    """Upsert files whose headers were just read (first seen kept, gone cleared)."""
    rows: list[dict[str, Any]] = [
        {**vars(h), "first_seen_at": now, "last_seen_at": now, "gone_at": None} for h in headers
    ]
    for chunk in chunks(rows):
        upsert(connection, LandingFile, chunk, keys=["uri"], keep=["first_seen_at"])


def mark_gone(connection: Connection, uris: Sequence[str], now: datetime) -> None:
    for chunk in chunks(sorted(uris)):
        connection.execute(update(LandingFile).where(FILES.c.uri.in_(chunk)).values(gone_at=now))


def touch(connection: Connection, prefixes: Sequence[str], now: datetime) -> None:
    """Every present file under ``prefixes`` was seen ``now`` (one statement)."""
    connection.execute(
        update(LandingFile)
        .where(under(prefixes), FILES.c.gone_at.is_(None))
        .values(last_seen_at=now)
    )


@dataclass(frozen=True)
class IndexedFile:
    """A present file of the index: where it is, its key, and its SOP UID or read error."""

    uri: str
    file_key: str
    sop_uid: str = ""
    read_error: str | None = None
    size: int = 0  # bytes as listed (what work units' cost estimates read)


def files_of(
    connection: Connection, study_uids: Sequence[str], scopes: Sequence[str]
) -> dict[str, list[IndexedFile]]:
    """Each present file of each study, in URI order."""
    found: dict[str, list[IndexedFile]] = {uid: [] for uid in study_uids}
    for chunk in chunks(sorted(set(study_uids))):
        query = (
            select(FILES.c.study_uid, FILES.c.uri, FILES.c.file_key, FILES.c.sop_uid, FILES.c.size)
            .where(FILES.c.study_uid.in_(chunk), FILES.c.gone_at.is_(None), under(scopes))
            .order_by(FILES.c.uri)
        )
        for study_uid, uri, key, sop_uid, size in connection.execute(query):
            found[study_uid].append(IndexedFile(uri, key, sop_uid or "", size=int(size or 0)))
    return found


def arrivals(connection: Connection, uris: Sequence[str]) -> dict[str, datetime]:
    """The indexed modification time (a DICOMweb instance's arrival) of each of ``uris``
    the index holds."""
    found: dict[str, datetime] = {}
    for chunk in chunks(sorted(set(uris))):
        query = select(FILES.c.uri, FILES.c.modified).where(FILES.c.uri.in_(chunk))
        found.update({uri: modified for uri, modified in connection.execute(query)})
    return found


def unidentified(connection: Connection, scopes: Sequence[str]) -> list[IndexedFile]:
    """Present files under ``scopes`` that belong to no study (``read_error`` says why, when
    the header could not be read), in URI order."""
    query = select(FILES.c.uri, FILES.c.file_key, FILES.c.sop_uid, FILES.c.read_error).where(
        under(scopes), FILES.c.gone_at.is_(None), FILES.c.study_uid.is_(None)
    )
    return [
        IndexedFile(uri, key, sop_uid or "", error)
        for uri, key, sop_uid, error in connection.execute(query.order_by(FILES.c.uri))
    ]


def study_count(connection: Connection, scopes: Sequence[str]) -> int:
    """Studies with a present file under ``scopes``."""
    query = select(func.count(func.distinct(FILES.c.study_uid))).where(
        under(scopes), FILES.c.gone_at.is_(None), FILES.c.study_uid.is_not(None)
    )
    return int(connection.execute(query).scalar_one())


class LandingIndex(Transactions):
    """The landing index as discovery and the run plan read and write it."""

    def landing_states(self, prefixes: Sequence[str]) -> dict[str, FileState]:
        """The landing index's rows under ``prefixes``: what a new listing is compared with."""
        with self._read() as connection:
            return states(connection, prefixes)

    def update_landing(
        self, read: Iterable[FileHeader], gone: Sequence[str], prefixes: Sequence[str],
        now: datetime,
    ) -> None:  # fmt: skip
        """Record the headers just read, mark ``gone`` files, and every other present file
        under ``prefixes`` as seen ``now``; one transaction."""

        def apply(connection: Connection) -> None:
            touch(connection, prefixes, now)
            write(connection, read, now)
            mark_gone(connection, gone, now)

        self._write(apply)

    def landing_files(
        self, study_uids: Sequence[str], scopes: Sequence[str]
    ) -> dict[str, list[IndexedFile]]:
        """Each present landing file of each study (URI, file key, SOP Instance UID)."""
        with self._read() as connection:
            return files_of(connection, study_uids, scopes)

    def landing_arrivals(self, uris: Sequence[str]) -> dict[str, datetime]:
        """The indexed modification time of each of ``uris`` (DICOMweb: its arrival)."""
        with self._read() as connection:
            return arrivals(connection, uris)

    def landing_study_count(self, scopes: Sequence[str]) -> int:
        """Studies with a present landing file under ``scopes``."""
        with self._read() as connection:
            return study_count(connection, scopes)

    def landing_unidentified(self, scopes: Sequence[str]) -> list[IndexedFile]:
        """Present landing files under ``scopes`` without a study (with their read errors)."""
        with self._read() as connection:
            return unidentified(connection, scopes)
