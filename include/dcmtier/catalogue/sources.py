"""Rows for studies, series and instances, from file headers and a streamed SHA-256, and the
operators' rows saying where each file was found.

Only headers are read (``stop_before_pixels``); no patient name or ID leaves the file, and the
landing location goes to ``file_locations`` only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from dcmtier.descriptors import DESCRIPTORS, series_descriptors
from dcmtier.records import Known, Study

# header fields kept with the series, not with each instance
_SERIES_ONLY = frozenset({"series_number", *DESCRIPTORS} - {"modality"})


@dataclass
class SourceRows:
    """What ``Catalogue.record_study`` writes for one study."""

    study: dict[str, Any]
    series: list[dict[str, Any]] = field(default_factory=list)
    instances: list[dict[str, Any]] = field(default_factory=list)
    locations: list[dict[str, Any]] = field(default_factory=list)


def source_rows(
    study: Study, now: datetime, known: Mapping[Path, Known] | None = None
) -> SourceRows:
    """Describe every readable file of ``study``; files without a SOP Instance UID are left out
    of ``instances`` (the failures table names them by file key). Every file has a location.

    The files in ``known`` (their header's fields, size and SHA-256, read once for the
    study's tier tasks, ``work.sources``) are not read again."""
    known = known or {}
    series: dict[str, dict[str, Any]] = {}
    instances: dict[str, dict[str, Any]] = {}
    locations = [location_row(study.key(path), study.uri(path), now) for path in study.files]
    for path in study.files:
        cached = known.get(path)
        fields: dict[str, Any] | None
        if cached is not None:
            fields, size, digest = cached.fields, cached.size, cached.sha256
        else:
            ds = _header(path)
            fields = header_fields(ds) if ds is not None else None
            size, digest = file_digest(path) if fields and fields["sop_uid"] else (0, "")
        if fields is None or not fields["sop_uid"]:
            continue
        row = _instance(fields, study, now, size, digest)
        instances[row["sop_uid"]] = row
        series.setdefault(
            row["series_uid"],
            {
                "series_uid": row["series_uid"],
                "study_uid": study.uid,
                "modality": row["modality"],
                "series_number": fields["series_number"],
                **{k: fields.get(k) for k in DESCRIPTORS if k != "modality"},
            },
        )
    modalities = ",".join(sorted({r["modality"] for r in instances.values()})) or "-"
    return SourceRows(
        study={
            "study_uid": study.uid,
            "modalities": modalities[:64],
            "first_seen_at": now,
            "updated_at": now,
        },
        series=list(series.values()),
        instances=list(instances.values()),
        locations=locations,
    )


def location_row(key: str, uri: str, now: datetime) -> dict[str, Any]:
    """A ``file_locations`` row: file ``key`` seen at ``uri`` now."""
    return {"file_key": key, "uri": uri, "first_seen_at": now, "last_seen_at": now}


def _header(path: Path) -> Dataset | None:
    try:
        return dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, AttributeError):
        return None


def header_fields(ds: Dataset) -> dict[str, Any]:
    """What an instance's catalogue rows take from its header (``work.sources`` keeps these
    for a study's tier tasks)."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID") or "") if meta is not None else ""
    return {
        "sop_uid": str(ds.get("SOPInstanceUID") or ""),
        "series_uid": str(ds.get("SeriesInstanceUID") or ""),
        "sop_class_uid": str(ds.get("SOPClassUID") or "") or None,
        "modality": str(ds.get("Modality") or "OT"),
        "transfer_syntax": syntax or None,
        "rows": _int(ds.get("Rows")),
        "columns": _int(ds.get("Columns")),
        "frames": _int(ds.get("NumberOfFrames")) or (1 if "Rows" in ds else None),
        "bits_allocated": _int(ds.get("BitsAllocated")),
        "bits_stored": _int(ds.get("BitsStored")),
        "photometric": str(ds.get("PhotometricInterpretation") or "") or None,
        "series_number": _int(ds.get("SeriesNumber")),
        **{k: v for k, v in series_descriptors(ds).items() if k != "modality"},
    }


def _instance(
    fields: Mapping[str, Any], study: Study, now: datetime, size: int, digest: str
) -> dict[str, Any]:
    row = {k: v for k, v in fields.items() if k not in _SERIES_ONLY}
    return {
        **row,
        "series_uid": row["series_uid"] or f"{study.uid}.unknown-series",
        "study_uid": study.uid,
        "bytes": size,
        "sha256": digest,
        "discovered_at": now,
    }


def file_digest(path: Path) -> tuple[int, str]:
    """Size and hex SHA-256 of a file, read in chunks."""
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
    return path.stat().st_size, digest.hexdigest()


def _int(value: object) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None
