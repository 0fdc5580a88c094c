"""What the Airflow tasks of ``dicom_archive_compression`` call to plan a run, runnable without
Airflow.

It brings the landing index up to date (headers read only for new or changed files), marks
``abandoned`` the running attempts whose owner is gone, chooses the run's study x tier pairs in
SQL on that index (settled, in the interval or the backlog of earlier intervals, not done, not
held; an ``abandoned`` or ``interrupted`` attempt is not done, a ``rejected`` one is: see
`dcmtier.catalogue.selection`), claims them so that no concurrent run takes them too,
and writes one small manifest per study under ``<output>/work/<run id>/``. It packs the run's
studies into work units of about ``unit_seconds`` of estimated work (`dcmtier.discovery.units`)
and writes each unit's studies to ``<output>/work/<run id>/units/<unit id>.json``. What it
returns for the DAG's mapping is ids and counts only: unit ids with their study counts, and
tier names.

Landing paths, whose folders and file names may carry patient names, stay in the catalogue's
operator tables: manifests name each file by its file key (kept in the landing index) and the
id of its ``file_locations`` row, which planning records for every file of a planned study;
reasons for files without a study name them by key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcmtier import owner
from dcmtier.catalogue.selection import BACKLOG, Selected, Selection
from dcmtier.discovery.index import index_landing, interval_prefixes, scopes_of
from dcmtier.discovery.landing import SKIP_REASONS, is_local, local_path, location
from dcmtier.discovery.stats import IndexStats
from dcmtier.discovery.units import UNIT_SECONDS, CostModel, StudySize, Unit, pack
from dcmtier.errors import ConfigError, StorageError
from dcmtier.records import FAILED, SKIPPED, Unidentified, name_by_key
from dcmtier.storage.store import is_remote, local_root, read_text, write_text
from dcmtier.tiers import layered_tiers, resolve_tiers

if TYPE_CHECKING:
    from dcmtier.catalogue import Catalogue
    from dcmtier.catalogue.landing import IndexedFile

log = logging.getLogger(__name__)

SELECT_BY = ("arrival", "study_date")
REPROCESS = ("none", "failed", "all")
STRATEGIES = ("layered", "per_tier")
MAX_STUDIES_PER_RUN = 1000
CLAIM_HOURS = 24
PLAN_FILE = "plan.json"


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
    max_studies_per_run: int = MAX_STUDIES_PER_RUN
    max_map_length: int = 1024
    strategy: str = "layered"
    listing_prefix: str = ""  # strftime template of a date-laid-out landing area, e.g. %Y/%m/%d
    claim_hours: float = CLAIM_HOURS
    unit_seconds: float = UNIT_SECONDS  # 0: one study a unit
    study_uids: Sequence[str] = ()  # only these studies; empty: every one selected

    def __post_init__(self) -> None:
        if self.select_by not in SELECT_BY:
            raise ConfigError(f"select_by must be one of {SELECT_BY}, not {self.select_by!r}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        if self.reprocess not in REPROCESS:
            raise ConfigError(f"reprocess must be one of {REPROCESS}, not {self.reprocess!r}")
        if self.unit_seconds < 0:
            raise ConfigError(f"unit_seconds must be 0 or more: {self.unit_seconds}")
        if self.max_studies_per_run < 1:
            raise ConfigError(f"max_studies_per_run must be 1 or more: {self.max_studies_per_run}")
        resolve_tiers(list(self.tiers))

    @property
    def capacity(self) -> int:
        """Studies per run: the compress task expands over units x tiers, two lists, each
        under Airflow's ``max_map_length`` (with ``unit_seconds`` 0, a unit per study)."""
        return max(1, min(self.max_studies_per_run, self.max_map_length))

    def prefixes(self) -> list[str]:
        """Where to list: the interval's date prefixes, or everything (empty)."""
        if not self.listing_prefix or self.interval is None:
            return []
        start, end = self.interval
        first = start.date()
        last = max(first, (end - timedelta(microseconds=1)).date())
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        return interval_prefixes(self.listing_prefix, days)

    def study_dates(self) -> tuple[date, date] | None:
        """The StudyDate range a DICOMweb landing area is searched for: the interval's days
        when the run selects by study date, else None (every study)."""
        if self.select_by != "study_date" or self.interval is None:
            return None
        start, end = self.interval
        return start.date(), max(start.date(), (end - timedelta(microseconds=1)).date())


@dataclass
class Plan:
    """Discovery's outcome: the studies and tiers to map over, and what was left out and why."""

    studies: list[str] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)
    pairs: dict[str, list[str]] = field(default_factory=dict)
    index: IndexStats = field(default_factory=IndexStats)
    selected: Selected = field(default_factory=Selected)
    unidentified: list[Unidentified] = field(default_factory=list)  # named by key
    abandoned: list[int] = field(default_factory=list)  # attempts marked abandoned (job ids)
    units: list[Unit] = field(default_factory=list)
    cost: CostModel = field(default_factory=CostModel)

    @property
    def backlog_taken(self) -> list[str]:
        return [uid for uid in self.studies if self.selected.groups.get(uid) == BACKLOG]

    def summary(self) -> dict[str, Any]:
        return {
            "work_pairs": sum(len(t) for t in self.pairs.values()),
            "studies": len(self.studies),
            "backlog_studies": len(self.backlog_taken),
            "waiting_studies": self.selected.waiting,
            "studies_seen": self.selected.studies_present,
            "unsettled": self.selected.unsettled,
            "outside_interval": self.selected.later,
            "unidentified_files": len(self.unidentified),
            "abandoned_attempts": len(self.abandoned),
            "claims_released": sum(self.selected.released.values()),
            "units": len(self.units),
            "cost_model": self.cost.as_dict(),
            "index": self.index.as_dict(),
        }

    def for_xcom(self) -> dict[str, Any]:
        """What the DAG maps over: ids and counts only (unit ids with their study counts,
        tier names), never a list of studies."""
        units = [u.for_xcom() for u in self.units]
        return {"units": units, "tiers": self.tiers, "summary": self.summary()}


def plan(request: PlanRequest, catalogue: Catalogue) -> Plan:
    """Discover the work for one run (see the module docstring)."""
    result = Plan()
    result.index = index_landing(request.landing, catalogue, prefixes=request.prefixes(),
                                 now=request.now, dates=request.study_dates())  # fmt: skip
    scopes = scopes_of(request.landing)
    tiers = [t.name for t in resolve_tiers(list(request.tiers))]
    result.abandoned = catalogue.reap()  # their pairs are planned again, and their runs' claims
    result.selected = catalogue.claim_work(
        Selection(
            scopes=scopes, tiers=tiers, run_id=request.run_id, now=request.now,
            settled_before=request.now - timedelta(seconds=request.settle_seconds),
            capacity=request.capacity,
            expires_at=request.now + timedelta(hours=request.claim_hours),
            select_by=request.select_by, interval=request.interval, reprocess=request.reprocess,
            study_uids=tuple(request.study_uids),
        )
    )  # fmt: skip
    result.pairs = result.selected.pairs
    result.studies = list(result.pairs)
    planned = {t for ts in result.pairs.values() for t in ts}
    result.tiers = [t for t in tiers if t in planned]
    result.unidentified = [_unidentified(f) for f in catalogue.landing_unidentified(scopes)]
    files = catalogue.landing_files(result.studies, scopes)
    ids = catalogue.record_locations(
        (f.file_key, location(f.uri)) for uid in result.studies for f in files[uid]
    )
    for uid in result.studies:
        _write_manifest(request, uid, result.pairs[uid], files[uid], ids)
    result.cost, result.units = _units(request, result, files, catalogue)
    result.tiers = _longest_first(request, result.tiers, catalogue)
    for unit in result.units:
        write_json(unit_path(request.output, request.run_id, unit.id),
                    {"unit": unit.id, "studies": list(unit.studies),
                     "estimate_s": unit.estimate_s})  # fmt: skip
    _write_plan(request, result)
    if result.selected.waiting:
        log.warning(
            "%d studies with work left wait for a later run (capacity %d studies per run); "
            "the catalogue view `backlog` lists them", result.selected.waiting, request.capacity,
        )  # fmt: skip
    return result


def _units(
    request: PlanRequest, result: Plan, files: dict[str, list[IndexedFile]], catalogue: Catalogue
) -> tuple[CostModel, list[Unit]]:
    """The run's studies packed into units; the cost model fitted from the catalogue's
    recorded attempts (not read when every study is its own unit), on the latest
    ``dcmtier estimate``'s model when there is one (what holds until the attempts are enough)."""
    from dcmtier.catalogue.attempts import durations
    from dcmtier.catalogue.estimates import latest_cost_model
    from dcmtier.discovery.units import Attempt, fit

    model = CostModel()
    if request.unit_seconds > 0 and result.studies:
        with catalogue.engine.connect() as connection:
            estimated = latest_cost_model(connection)
            base = model
            if estimated:
                base = CostModel(estimated["study_s"], estimated["byte_s"], estimated["instance_s"])
            model = fit((Attempt(*row) for row in durations(connection)), base)
    sizes = [
        StudySize(uid, len(files[uid]), sum(f.size for f in files[uid])) for uid in result.studies
    ]
    return model, pack(sizes, request.unit_seconds, model)


def _longest_first(request: PlanRequest, tiers: list[str], catalogue: Catalogue) -> list[str]:
    """The run's tiers, the slowest first by the median of their recorded attempts (tiers
    never attempted first of all, in the order asked): ``compress`` maps over units x tiers
    with the tier varying fastest, and the pool starts the lowest map indexes first, so the
    long tasks start early and the run's last slot-idle minutes are short (longest processing
    time first). With one study a unit (``unit_seconds`` 0) the order asked is kept."""
    from dcmtier.catalogue.attempts import tier_seconds

    if request.unit_seconds <= 0 or len(tiers) < 2:
        return tiers
    with catalogue.engine.connect() as connection:
        seconds = tier_seconds(connection, tiers)
    unknown = float("inf")
    return sorted(tiers, key=lambda t: -seconds.get(t, unknown))


def unit_path(output: Path | str, run_id: str, unit: str) -> str:
    return f"{work_folder(output, run_id)}/units/{safe_name(unit)}.json"


def read_unit(output: Path | str, run_id: str, unit: str) -> list[str]:
    """The studies of unit ``unit`` of run ``run_id``, in the order they run."""
    path = unit_path(output, run_id, unit)
    try:
        return [str(uid) for uid in json.loads(read_text(path))["studies"]]
    except (FileNotFoundError, StorageError) as exc:
        if isinstance(exc, StorageError) and not isinstance(exc.__cause__, FileNotFoundError):
            raise
        raise ConfigError(
            f"unit {unit} has no membership file in run {run_id} ({path}): discovery did not "
            "plan it; clear the run's discover task to plan again"
        ) from exc


def work_folder(output: Path | str, run_id: str) -> str:
    """``<output>/work/<run>``: a folder, or a prefix on an object store."""
    root = str(output).rstrip("/") if is_remote(output) else str(local_root(output))
    return f"{root}/work/{safe_name(run_id)}"


def manifest_path(output: Path | str, run_id: str, study_uid: str) -> str:
    return f"{work_folder(output, run_id)}/{study_uid}.json"


def read_manifest(output: Path | str, run_id: str, study_uid: str) -> dict[str, Any]:
    """The manifest discovery wrote for ``study_uid`` in run ``run_id``."""
    path = manifest_path(output, run_id, study_uid)
    try:
        body: dict[str, Any] = json.loads(read_text(path))
    except (FileNotFoundError, StorageError) as exc:
        if isinstance(exc, StorageError) and not isinstance(exc.__cause__, FileNotFoundError):
            raise
        raise ConfigError(
            f"study {study_uid} has no manifest in run {run_id} ({path}): discovery did not "
            "plan it; clear the run's discover task to plan again"
        ) from exc
    return body


def read_plan(output: Path | str, run_id: str) -> dict[str, Any] | None:
    """The run's plan (studies, tiers, summary), None before discovery wrote one."""
    try:
        return dict(json.loads(read_text(f"{work_folder(output, run_id)}/{PLAN_FILE}")))
    except FileNotFoundError:
        return None
    except StorageError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return None
        raise


def _write_manifest(
    request: PlanRequest,
    study_uid: str,
    tiers: Sequence[str],
    files: Sequence[IndexedFile],
    location_ids: dict[tuple[str, str], int],
) -> None:
    """``work/<run>/<study>.json``: the pairs' tiers, and per file its key, SOP Instance UID as
    found and location id in the catalogue (``file_locations.id``), never its path."""
    layers = _layer_tier_names(tiers) if request.strategy == "layered" else []
    entries = [
        {"key": f.file_key, "sop_uid": f.sop_uid,
         "location": location_ids[(f.file_key, location(f.uri))]}
        for f in files
    ]  # fmt: skip
    body = {
        "study_uid": study_uid,
        "tiers": list(tiers),
        "strategy": request.strategy,
        "layer_tiers": layers,
        "files": entries,
    }
    write_json(manifest_path(request.output, request.run_id, study_uid), body)


def _unidentified(indexed: IndexedFile) -> Unidentified:
    """A present file without a StudyInstanceUID, its reason naming it by key: ``skipped`` when
    it is no instance at all (not DICOM, a DICOMDIR), else ``failed``."""
    key = indexed.file_key
    where: Path | str = local_path(indexed.uri) if is_local(indexed.uri) else indexed.uri
    reason = name_by_key(indexed.read_error or "no StudyInstanceUID in the header", where, key)
    path = where if isinstance(where, Path) else None
    status = SKIPPED if indexed.read_error in SKIP_REASONS else FAILED
    return Unidentified(key, location(indexed.uri), f"{key}: {reason}", path, status)


def _write_plan(request: PlanRequest, result: Plan) -> None:
    body = {**result.for_xcom(), "studies": result.studies, "backlog_taken": result.backlog_taken}
    write_json(f"{work_folder(request.output, request.run_id)}/{PLAN_FILE}", body)


def write_json(path: str, body: dict[str, Any]) -> None:
    """Write atomically: a task reading it never sees half a file (a local file is written
    beside and renamed; an object is one PUT)."""
    text = json.dumps(body, indent=1, sort_keys=True)
    if is_remote(path):
        write_text(path, text)
        return
    with owner.replacing(Path(path)) as temp:
        temp.file.write(text.encode())


def _layer_tier_names(tiers: Sequence[str]) -> list[str]:
    return [t.name for t in layered_tiers(resolve_tiers(list(tiers)))]


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
