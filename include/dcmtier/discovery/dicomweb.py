"""A DICOMweb landing area (``dicomweb+http(s)://host/prefix``): the landing index kept per
instance from QIDO-RS searches, metadata read with WADO-RS only for instances not seen yet.

A pass asks for the server's studies (those whose StudyDate is in ``dates`` when given: a run
selecting by study date, or a backfill's interval), each with its number of instances. A
study whose count equals the index's present instances of it is taken as unchanged: its
instances are not listed again. The instances of any other study are listed (one search per
study), and the metadata of those the index does not hold is fetched: one request per series
when several of its instances are new, else one per instance (``headers_read`` counts the
instances whose metadata was fetched). Instances of a listed study that are no longer there,
and, on a pass without ``dates``, every instance of a study no longer offered, are marked
gone. QIDO-RS gives no size or arrival time: an instance's size is 0, and its arrival is when
discovery first saw it (what ``settle_seconds`` waits on).

The command line (``dcmtier process`` / ``compress``) has no index: it lists every study's
instances with QIDO-RS alone (``landing.list_files``), no metadata.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from dcmtier.catalogue.landing import FileHeader, FileState
from dcmtier.discovery.landing import LandingFile, folder_scope
from dcmtier.discovery.stats import IndexStats
from dcmtier.records import KEY_DIGITS, is_valid_uid
from dcmtier.storage import dicomweb
from dcmtier.storage.dicomweb import MODALITY, STUDY_DATE, UID, Ref, Server, split_uri

if TYPE_CHECKING:
    from dcmtier.catalogue import Catalogue

READERS = 8  # concurrent metadata requests
UID_MAX = 64  # characters, as DICOM allows


def index_dicomweb(
    landing: str,
    catalogue: Catalogue,
    *,
    dates: tuple[date, date] | None = None,
    readers: int = READERS,
    now: datetime | None = None,
) -> IndexStats:
    """Bring the landing index up to date with the server ``landing`` (module docstring)."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    stats = IndexStats()
    scope = folder_scope(landing)
    known = catalogue.landing_states([scope])
    present = _present_by_study(known)
    listed: set[str] = set()
    new: list[tuple[LandingFile, Ref]] = []
    with Server(landing) as server:
        studies = server.studies(dates)
        for study in studies:
            held = present.get(study.uid, {})
            if held and study.instances == len(held):
                listed.update(held)
                continue
            for ref in server.instances(study.uid):
                uri = server.uri(ref)
                listed.add(uri)
                state = known.get(uri)
                if state is None or state.gone:
                    stats.files_new += state is None
                    stats.files_changed += state is not None
                    new.append((LandingFile(uri, 0, now), ref))
        stats.list_s = time.perf_counter() - started
        mark = time.perf_counter()
        headers = read_metadata(server, new, readers=readers)
        stats.read_s = time.perf_counter() - mark
    offered = {s.uid for s in studies}
    gone = [
        uri
        for study, held in present.items()
        if dates is None or study in offered
        for uri in held
        if uri not in listed
    ]
    stats.files_listed, stats.files_gone = len(listed), len(gone)
    stats.headers_read = len(headers)
    stats.unreadable = sum(1 for h in headers if h.study_uid is None)
    mark = time.perf_counter()
    catalogue.update_landing(headers, gone, [scope], now)
    stats.write_s = time.perf_counter() - mark
    stats.seconds = time.perf_counter() - started
    return stats


def _present_by_study(known: Mapping[str, FileState]) -> dict[str, dict[str, FileState]]:
    """The index's present instances, by the study UID in their URI."""
    found: dict[str, dict[str, FileState]] = defaultdict(dict)
    for uri, state in known.items():
        if not state.gone:
            found[split_uri(uri)[1].study][uri] = state
    return found


def read_metadata(
    server: Server, items: Sequence[tuple[LandingFile, Ref]], *, readers: int = READERS
) -> list[FileHeader]:
    """The landing index row of each instance from its WADO-RS metadata: a series' at once
    when several of its instances are asked for, else each instance's."""
    groups: dict[tuple[str, str], list[tuple[LandingFile, Ref]]] = defaultdict(list)
    for item, ref in items:
        groups[(ref.study, ref.series)].append((item, ref))

    def read(group: list[tuple[LandingFile, Ref]]) -> list[FileHeader]:
        first = group[0][1]
        sop = first.sop if len(group) == 1 else None
        found = {
            dicomweb.value(m, UID["sop"]): m
            for m in server.metadata(first.study, first.series, sop)
        }
        return [header(item, found.get(ref.sop)) for item, ref in group]

    if not groups:
        return []
    with ThreadPoolExecutor(max(1, readers), thread_name_prefix="dcmtier-qido") as pool:
        return [h for part in pool.map(read, groups.values()) for h in part]


def header(item: LandingFile, meta: Mapping[str, Any] | None) -> FileHeader:
    """One instance's landing index row from its metadata (None: the server gave none)."""
    if meta is None:
        return _unreadable(item, "the server returned no metadata for this instance")
    uids = {name: (dicomweb.value(meta, tag) or "").strip() for name, tag in UID.items()}
    too_long = [name for name, uid in uids.items() if len(uid) > UID_MAX]
    if too_long:
        return _unreadable(item, f"{too_long[0]} UID longer than {UID_MAX} characters")
    return FileHeader(
        item.uri, item.size, item.modified, key_for(item.uri, uids["sop"]),
        study_uid=uids["study"] or None, series_uid=uids["series"] or None,
        sop_uid=uids["sop"] or None, study_date=_date(dicomweb.value(meta, STUDY_DATE)),
        modality=(dicomweb.value(meta, MODALITY) or "")[:16] or None,
    )  # fmt: skip


def _unreadable(item: LandingFile, reason: str) -> FileHeader:
    return FileHeader(item.uri, item.size, item.modified, key_for(item.uri, ""), read_error=reason)


def key_for(uri: str, sop_uid: str) -> str:
    """An instance's file key: its SOP Instance UID when valid, else a hash of its URI (which
    names it by its UIDs on the server: no content is read to name it)."""
    return (
        sop_uid if is_valid_uid(sop_uid) else hashlib.sha256(uri.encode()).hexdigest()[:KEY_DIGITS]
    )


def _date(text: str | None) -> date | None:
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date() if text and len(text) >= 8 else None
    except ValueError:
        return None
