"""What the Airflow tasks of ``dicom_archive_compression`` call, runnable without Airflow.

It reads headers only, groups files by StudyInstanceUID, keeps settled studies of the run's
interval, skips study x tier pairs the catalogue already has, caps the run and writes one small
manifest per study; the work items it returns are references (UIDs and the manifest), never
pixels. Manifests name files by file key and location id: landing paths, which may carry
patient names, go to the catalogue's operator table ``file_locations`` only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcmtier.discovery.landing import (
    LandingFile,
    is_local,
    iter_headers,
    key_of,
    list_files,
    local_path,
    location,
    stage,
)
from dcmtier.errors import ConfigError
from dcmtier.records import FAILED, SKIPPED, Unidentified, name_by_key
from dcmtier.storage.store import is_remote, local_root, write_text
from dcmtier.tiers import layered_tiers, resolve_tiers

if TYPE_CHECKING:
    from dcmtier.catalogue import Catalogue
    from dcmtier.records import Study

log = logging.getLogger(__name__)

SELECT_BY = ("arrival", "study_date")
REPROCESS = ("none", "failed", "all")
STRATEGIES = ("layered", "per_tier")
RERUN_STATUSES = {"none": frozenset(), "failed": frozenset({"failed", "partial"})}
# An attempt whose owner died (abandoned) or was stopped (interrupted) never finished: the pair
# is not done, whatever ``reprocess`` says.
NOT_DONE = frozenset({"abandoned", "interrupted"})


@dataclass(frozen=True)
class PlanRequest:
    """Discovery's inputs: the DAG's params and the run's interval, read once at the edge."""

    landing: str
    output: Path | str  # a local folder, or an object store URL
    tiers: Sequence[str]
    run_id: str
    now: datetime
    interval: tuple[datetime, datetime] | None = None  # None: a manual run, no filter
    select_by: str = "arrival"
    reprocess: str = "none"
    settle_seconds: int = 300
    max_studies_per_run: int = 50
    max_map_length: int = 1024
    strategy: str = "layered"

    def __post_init__(self) -> None:
        if self.select_by not in SELECT_BY:
            raise ConfigError(f"select_by must be one of {SELECT_BY}, not {self.select_by!r}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        if self.reprocess not in REPROCESS:
            raise ConfigError(f"reprocess must be one of {REPROCESS}, not {self.reprocess!r}")
        resolve_tiers(list(self.tiers))


@dataclass
class Candidate:
    """A study seen in the landing area, from its headers."""

    uid: str
    files: list[LandingFile] = field(default_factory=list)
    sop_uids: dict[str, str] = field(default_factory=dict)  # by landing URI
    keys: dict[str, str] = field(default_factory=dict)  # file keys, by landing URI
    study_date: date | None = None

    @property
    def last_arrival(self) -> datetime:
        return max(f.modified for f in self.files)


@dataclass
class Plan:
    """Discovery's outcome: the work items and why other studies were left out."""

    items: list[dict[str, Any]]
    studies_seen: int = 0
    unsettled: list[str] = field(default_factory=list)
    outside_interval: int = 0
    already_done: int = 0
    deferred: list[str] = field(default_factory=list)
    unidentified: list[Unidentified] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "work_items": len(self.items),
            "studies_seen": self.studies_seen,
            "unsettled": len(self.unsettled),
            "outside_interval": self.outside_interval,
            "already_done_pairs": self.already_done,
            "deferred_studies": len(self.deferred),
            "unidentified_files": len(self.unidentified),
        }


def plan(request: PlanRequest, catalogue: Catalogue) -> Plan:
    """Discover the work for one run (see the module docstring).

    The catalogue says which pairs are done and records where each planned file was found
    (the manifests hold its location id instead).
    """
    candidates, unidentified = find_candidates(request.landing)
    result = Plan(items=[], studies_seen=len(candidates), unidentified=unidentified)
    settle = timedelta(seconds=request.settle_seconds)
    chosen = []
    for study in sorted(candidates.values(), key=lambda c: (c.last_arrival, c.uid)):
        if study.last_arrival > request.now - settle:
            result.unsettled.append(study.uid)
        elif not _in_interval(study, request):
            result.outside_interval += 1
        else:
            chosen.append(study)
    pairs = _pairs_to_run(chosen, request, catalogue, result)
    cap = max(1, min(request.max_studies_per_run, request.max_map_length // len(request.tiers)))
    studies = list(dict.fromkeys(uid for uid, _ in pairs))
    keep, result.deferred = set(studies[:cap]), studies[cap:]
    if result.deferred:
        log.warning(
            "%d studies left for the next run (cap %d studies per run)", len(result.deferred), cap
        )
    for study in chosen:
        if study.uid in keep:
            ids = catalogue.record_locations(
                (study.keys[f.uri], location(f.uri)) for f in study.files
            )
            manifest = _write_manifest(request, study, ids)
            mine = [t for s, t in pairs if s == study.uid]
            layers = _layer_tier_names(mine) if request.strategy == "layered" else []
            result.items += [_item(study.uid, t, manifest, request.strategy, layers) for t in mine]
            if is_local(request.landing):
                catalogue.record_study(_local_study(study))
    return result


def _layer_tier_names(tiers: Sequence[str]) -> list[str]:
    return [t.name for t in layered_tiers(resolve_tiers(list(tiers)))]


def find_candidates(landing: str) -> tuple[dict[str, Candidate], list[Unidentified]]:
    """The studies under ``landing`` (a folder or a URL) from their headers, and the files
    that belong to none."""
    studies: dict[str, Candidate] = {}
    unidentified = []
    for item, header, error, skip in iter_headers(list_files(landing)):
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
        study.study_date = study.study_date or _dicom_date(header.get("StudyDate"))
    for bad in unidentified:
        log.warning("no study for %s", bad.reason)
    return studies, unidentified


def _unidentified(item: LandingFile, key: str, error: str | None, skip: str | None) -> Unidentified:
    """A file that is no instance of any study (``skipped``: not DICOM, a DICOMDIR; else
    ``failed``: no StudyInstanceUID), its reason naming it by key."""
    reason = name_by_key(skip or error or "no StudyInstanceUID in the header", item.uri, key)
    path = local_path(item.uri) if is_local(item.uri) else None
    return Unidentified(
        key, location(item.uri), f"{key}: {reason}", path, SKIPPED if skip else FAILED
    )


def _in_interval(study: Candidate, request: PlanRequest) -> bool:
    if request.interval is None:
        return True
    start, end = request.interval
    if request.select_by == "arrival":
        # Studies that arrived in the interval, plus earlier ones still not done (deferred by
        # the cap, or unsettled last time): the catalogue check drops those already done.
        # Reprocessing everything stays within the interval.
        earliest = (
            start if request.reprocess == "all" else datetime.min.replace(tzinfo=start.tzinfo)
        )
        return any(earliest <= f.modified < end for f in study.files)
    if study.study_date is None:
        return False
    last_day = max(start.date(), (end - timedelta(microseconds=1)).date())
    return start.date() <= study.study_date <= last_day


def _pairs_to_run(
    studies: Sequence[Candidate], request: PlanRequest, catalogue: Catalogue | None, plan: Plan
) -> list[tuple[str, str]]:
    tiers = [t.name for t in resolve_tiers(list(request.tiers))]
    status = catalogue.pair_status([s.uid for s in studies], tiers) if catalogue else {}
    pairs = []
    for study in studies:
        for tier in tiers:
            seen = status.get((study.uid, tier))
            if (
                request.reprocess != "all"
                and seen is not None
                and seen not in NOT_DONE
                and (seen == "ok" or seen not in RERUN_STATUSES[request.reprocess])
            ):
                plan.already_done += 1
                continue
            pairs.append((study.uid, tier))
    return pairs


def _local_study(study: Candidate) -> Study:
    from dcmtier.records import Study

    paths = {uri: local_path(uri) for uri in study.sop_uids}
    return Study(
        study.uid,
        tuple(paths.values()),
        {paths[u]: s for u, s in study.sop_uids.items()},
        keys={paths[u]: k for u, k in study.keys.items()},
    )


def stage_study(study: Candidate, folder: Path) -> Study:
    """The study with its remote files copied into ``folder`` (named by number, not by their
    names), each remembering where it was found."""
    from dcmtier.records import Study

    uris = [f.uri for f in study.files]
    paths = stage(uris, folder)
    return Study(
        study.uid,
        tuple(paths),
        {p: study.sop_uids[u] for p, u in zip(paths, uris, strict=True)},
        uris={p: location(u) for p, u in zip(paths, uris, strict=True)},
        keys={p: study.keys[u] for p, u in zip(paths, uris, strict=True)},
    )


def _write_manifest(
    request: PlanRequest, study: Candidate, location_ids: dict[tuple[str, str], int]
) -> str:
    """``work/<run>/<study>.json`` under the output root (a file, or an object on a store):
    per file its key, SOP Instance UID as found, and location
    id in the catalogue (``file_locations.id``), never its path."""
    name = f"work/{safe_name(request.run_id)}/{study.uid}.json"
    if is_remote(request.output):
        path = f"{str(request.output).rstrip('/')}/{name}"
    else:
        path = str(local_root(request.output) / name)
    files = []
    for f in study.files:
        key = study.keys[f.uri]
        files.append(
            {"key": key, "sop_uid": study.sop_uids[f.uri],
             "location": location_ids[(key, location(f.uri))]}
        )  # fmt: skip
    body = {"study_uid": study.uid, "files": files, "bytes": sum(f.size for f in study.files)}
    write_text(path, json.dumps(body, indent=1, sort_keys=True))
    return path


def _item(
    study_uid: str, tier: str, manifest: str, strategy: str, layer_tiers: list[str]
) -> dict[str, Any]:
    return {
        "study_uid": study_uid,
        "tier": tier,
        "strategy": strategy,
        "layer_tiers": layer_tiers,
        "manifest": manifest,
        "label": f"…{study_uid[-12:]} · {tier}",
    }


def _dicom_date(value: object) -> date | None:
    text = str(value or "").strip()
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
