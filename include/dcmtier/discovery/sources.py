"""The studies under a URL given to ``dcmtier process`` or ``compress``: every header read once.

The command line has no landing index (that is the DAG's, `dcmtier.discovery.index`): it reads
the headers of the files under each remote source where they are (never pixel data), groups
them by StudyInstanceUID and stages one study at a time into the run's staging folder, its files
named by number (a landing file name may carry a patient's name).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from dcmtier.discovery.landing import (
    LandingFile,
    is_local,
    key_of,
    list_files,
    local_path,
    location,
    read_header,
    stage,
)
from dcmtier.records import FAILED, SKIPPED, Study, Unidentified, name_by_key
from dcmtier.storage.dicomweb import is_dicomweb, split_uri

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """A study seen under a source, from its headers."""

    uid: str
    files: list[LandingFile] = field(default_factory=list)
    sop_uids: dict[str, str] = field(default_factory=dict)  # by landing URI
    keys: dict[str, str] = field(default_factory=dict)  # file keys, by landing URI
    study_date: date | None = None

    @property
    def last_arrival(self) -> datetime:
        return max(f.modified for f in self.files)


def find_candidates(source: str) -> tuple[dict[str, Candidate], list[Unidentified]]:
    """The studies under ``source`` (a folder or a URL) from their headers, and the files that
    belong to none."""
    if is_dicomweb(source):  # searched with QIDO-RS: the UIDs are in each instance's URL
        return _archived(list_files(source)), []
    studies: dict[str, Candidate] = {}
    unidentified = []
    for item, header, error, skip in iter_headers(list_files(source)):
        uid = str(header.get("StudyInstanceUID") or "") if header is not None else ""
        sop_uid = str(header.get("SOPInstanceUID") or "") if header is not None else ""
        key = key_of(item, sop_uid)
        if skip or not uid:
            unidentified.append(_unidentified(item, key, error, skip))
            continue
        study = studies.setdefault(uid, Candidate(uid))
        study.files.append(item)
        study.sop_uids[item.uri] = sop_uid
        study.keys[item.uri] = key
    for bad in unidentified:
        log.warning("no study for %s", bad.reason)
    return studies, unidentified


def _archived(files: Sequence[LandingFile]) -> dict[str, Candidate]:
    """The studies of a DICOMweb archive's instances, grouped by the UIDs in their URLs."""
    studies: dict[str, Candidate] = {}
    for item in files:
        ref = split_uri(item.uri)[1]
        study = studies.setdefault(ref.study, Candidate(ref.study))
        study.files.append(item)
        study.sop_uids[item.uri] = ref.sop
        study.keys[item.uri] = key_of(item, ref.sop)
    return studies


def iter_headers(
    files: Sequence[LandingFile],
) -> Iterator[tuple[LandingFile, Any, str | None, str | None]]:
    """Yield (file, header dataset or None, error, skip reason), reading headers only.

    The skip reason says why a file is not an instance at all (``skip_reason``).
    """
    for item in files:
        yield item, *read_header(item.uri)


def stage_study(study: Candidate, folder: Path) -> Study:
    """The study with its remote files copied into ``folder`` (named by number, not by their
    names), each remembering where it was found."""
    uris = [f.uri for f in study.files]
    paths = stage(uris, folder)
    return Study(
        study.uid,
        tuple(paths),
        {p: study.sop_uids[u] for p, u in zip(paths, uris, strict=True)},
        uris={p: location(u) for p, u in zip(paths, uris, strict=True)},
        keys={p: study.keys[u] for p, u in zip(paths, uris, strict=True)},
    )


def _unidentified(item: LandingFile, key: str, error: str | None, skip: str | None) -> Unidentified:
    """A file that is no instance of any study (``skipped``: not DICOM, a DICOMDIR; else
    ``failed``: no StudyInstanceUID), its reason naming it by key."""
    reason = name_by_key(skip or error or "no StudyInstanceUID in the header", item.uri, key)
    path = local_path(item.uri) if is_local(item.uri) else None
    return Unidentified(
        key, location(item.uri), f"{key}: {reason}", path, SKIPPED if skip else FAILED
    )
