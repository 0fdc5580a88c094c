"""Keeping the landing index current: list, compare, read only new or changed headers.

A listing costs one ``stat`` (local) or one LIST page per 1,000 objects (object stores); a
header read costs an ``open`` and a read of the first blocks (local) or one GET (object stores).
Discovery therefore reads the header of a file only when the index has no row for it, or its
size, modification time or ETag differ; files the index knows under the listed prefixes but
the listing no longer shows are marked gone. Remote headers are read by a bounded pool of
threads (the work is waiting on the network); local ones in this thread.

Each file's key (``dcmtier.records.file_key``) is worked out at that read and kept in the
index: its SOP Instance UID when valid, else a hash of its content (a file without a usable
UID is read whole once, when it is new or changed, never again while it stays the same).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from dcmtier.catalogue.landing import FileHeader, FileState
from dcmtier.discovery.landing import (
    HEADER_BLOCK,
    LandingFile,
    folder_scope,
    is_local,
    join,
    key_of,
    list_files,
    list_prefixes,
)
from dcmtier.discovery.landing import read_header as read_landing_header
from dcmtier.discovery.stats import IndexStats
from dcmtier.errors import one_line
from dcmtier.storage.dicomweb import is_dicomweb

if TYPE_CHECKING:
    from dcmtier.catalogue import Catalogue

REMOTE_READERS = 16  # concurrent header reads on an object store
UID_MAX = 64


def scopes_of(landing: str, prefixes: Sequence[str] = ()) -> list[str]:
    """The URI prefixes a pass covers: the landing area, or each of its listed prefixes."""
    if not prefixes:
        return [folder_scope(landing)]
    return [folder_scope(join(landing, p)).rstrip("/") + "/" for p in prefixes]


def index_landing(
    landing: str,
    catalogue: Catalogue,
    *,
    prefixes: Sequence[str] = (),
    readers: int = REMOTE_READERS,
    now: datetime | None = None,
    dates: tuple[date, date] | None = None,
) -> IndexStats:
    """Bring the catalogue's landing index up to date with ``landing`` (or its ``prefixes``).

    A DICOMweb landing area (``dicomweb+http(s)://``) has no folders: it is searched instead,
    for the studies whose StudyDate is within ``dates`` when given (`discovery.dicomweb`).
    """
    if is_dicomweb(landing):
        from dcmtier.discovery.dicomweb import index_dicomweb  # it builds on this module

        return index_dicomweb(landing, catalogue, dates=dates, readers=readers, now=now)
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    stats = IndexStats()
    listed = list_prefixes(landing, prefixes) if prefixes else list_files(landing)
    scopes = scopes_of(landing, prefixes)
    known = catalogue.landing_states(scopes)
    stats.files_listed = len(listed)
    stats.list_s = time.perf_counter() - started
    to_read = []
    for item in listed:
        state = known.get(item.uri)
        if state is None:
            stats.files_new += 1
            to_read.append(item)
        elif _changed(item, state):
            stats.files_changed += 1
            to_read.append(item)
    present = {item.uri for item in listed}
    gone = [uri for uri, state in known.items() if not state.gone and uri not in present]
    stats.files_gone = len(gone)
    mark = time.perf_counter()
    headers = read_headers(to_read, readers=readers)
    stats.headers_read = len(headers)
    stats.unreadable = sum(1 for h in headers if h.study_uid is None)
    stats.read_s = time.perf_counter() - mark
    mark = time.perf_counter()
    catalogue.update_landing(headers, gone, scopes, now)
    stats.write_s = time.perf_counter() - mark
    stats.seconds = time.perf_counter() - started
    return stats


def _changed(item: LandingFile, state: FileState) -> bool:
    if state.gone or item.size != state.size:
        return True
    if item.etag is not None or state.etag is not None:
        return item.etag != state.etag
    return item.modified != state.modified


def read_headers(
    files: Sequence[LandingFile], *, readers: int = REMOTE_READERS
) -> list[FileHeader]:
    """The header of each file (never pixel data); remote ones ``readers`` at a time."""
    if not files:
        return []
    if all(is_local(f.uri) for f in files) or readers <= 1:
        return [read_header(f) for f in files]
    with ThreadPoolExecutor(max_workers=readers, thread_name_prefix="dcmtier-header") as pool:
        return list(pool.map(read_header, files))


def read_header(item: LandingFile) -> FileHeader:
    """One file's key, UIDs, StudyDate and Modality, or why they could not be read."""
    ds, error, skip = read_landing_header(item.uri, block_size=HEADER_BLOCK)
    if ds is not None and not skip:
        try:
            sop_uid = _uid(ds, "SOPInstanceUID")
            return FileHeader(
                item.uri, item.size, item.modified, key_of(item, sop_uid or ""), item.etag,
                study_uid=_uid(ds, "StudyInstanceUID"),
                series_uid=_uid(ds, "SeriesInstanceUID"),
                sop_uid=sop_uid,
                study_date=_dicom_date(ds.get("StudyDate")),
                modality=str(ds.get("Modality") or "")[:16] or None,
            )  # fmt: skip
        except Exception as exc:  # a UID too long, or a value pydicom cannot convert
            error = one_line(exc)
    # not DICOM or a DICOMDIR (skipped: a ``skip_reason``), or unreadable: kept as its read error
    return FileHeader(item.uri, item.size, item.modified, key_of(item, ""), item.etag,
                      read_error=str(skip or error)[:1000])  # fmt: skip


def _uid(ds: Any, keyword: str) -> str | None:
    value = str(ds.get(keyword) or "").strip()
    if len(value) > UID_MAX:
        raise ValueError(f"{keyword} is {len(value)} characters long, DICOM allows {UID_MAX}")
    return value or None


def _dicom_date(value: object) -> date | None:
    text = str(value or "").strip()
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def interval_prefixes(template: str, days: Iterable[date]) -> list[str]:
    """The listing prefixes of a date-laid-out landing area: ``template`` (strftime, e.g.
    ``%Y/%m/%d``) for each day, in order, without duplicates."""
    return list(dict.fromkeys(day.strftime(template) for day in days))
