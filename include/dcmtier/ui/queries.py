"""What the pages read from the catalogue: the analysts' views, and a few joins they lack.

Every query is plain SQL that runs unchanged on PostgreSQL and SQLite, bounded by ``LIMIT``
where a table can grow with the archive, so a page costs the same for ten studies or a
thousand. Landing paths never leave this module: the ``file`` columns are not selected, and
reasons (which may quote a path) pass through `redact`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, inspect, text

from dcmtier.catalogue.publications import Published, published

ROWS_SHOWN: Final = 100  # failures and backlog rows on the overview (with the total beside)
WORST_SHOWN: Final = 15
HIDDEN_COLUMN: Final = re.compile(r"file|path|uri|landing", re.IGNORECASE)
_PATH: Final = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+|(?<![\w.~])/[^\s:;,'\"()]+", re.IGNORECASE)


# The overview's tier table: the savings_by_tier and quality_by_tier views as the migrations
# define them, what those views do not hold (pixel ratio, gate outcomes, open failures), joined
# by tier name.
TIER_FIGURES: Final = (
    "SELECT tier, studies, instances, original_bytes, compressed_bytes, ratio, zip_bytes "
    "FROM savings_by_tier",
    "SELECT tier, frames, psnr_min, psnr_median, ssim_min, ssim_mean, max_abs_diff, "
    "psnr_range_min, ssim_range_min FROM quality_by_tier",
    "SELECT tier, CAST(SUM(pixel_bytes_in) AS DOUBLE PRECISION) "
    "/ CAST(NULLIF(SUM(pixel_bytes_out), 0) AS DOUBLE PRECISION) AS pixel_ratio, "
    "SUM(CASE WHEN gate_passed THEN 1 ELSE 0 END) AS gate_passed, "
    "SUM(CASE WHEN gate_passed THEN 0 ELSE 1 END) AS gate_failed "
    "FROM derived_instances GROUP BY tier",
    "SELECT tier, SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed, "
    "SUM(CASE WHEN status = 'refused' THEN 1 ELSE 0 END) AS refused "
    "FROM failure_records WHERE resolved_at IS NULL GROUP BY tier",
)


# The same figures for one modality (the overview's filter): the views by modality, and the
# joins above restricted to the series of that modality.
_OF_MODALITY: Final = (
    "JOIN instances i ON i.sop_uid = {sop} JOIN series s ON s.series_uid = i.series_uid "
    "WHERE s.modality = :modality"
)
TIER_FIGURES_OF_MODALITY: Final = (
    "SELECT tier, studies, instances, original_bytes, compressed_bytes, ratio, zip_bytes "
    "FROM savings_by_modality WHERE modality = :modality",
    "SELECT tier, frames, psnr_min, psnr_median, ssim_min, ssim_mean, max_abs_diff, "
    "psnr_range_min, ssim_range_min FROM quality_by_modality WHERE modality = :modality",
    "SELECT d.tier AS tier, CAST(SUM(d.pixel_bytes_in) AS DOUBLE PRECISION) "
    "/ CAST(NULLIF(SUM(d.pixel_bytes_out), 0) AS DOUBLE PRECISION) AS pixel_ratio, "
    "SUM(CASE WHEN d.gate_passed THEN 1 ELSE 0 END) AS gate_passed, "
    "SUM(CASE WHEN d.gate_passed THEN 0 ELSE 1 END) AS gate_failed "
    f"FROM derived_instances d {_OF_MODALITY.format(sop='d.source_sop_uid')} GROUP BY d.tier",
    "SELECT f.tier AS tier, SUM(CASE WHEN f.status = 'failed' THEN 1 ELSE 0 END) AS failed, "
    "SUM(CASE WHEN f.status = 'refused' THEN 1 ELSE 0 END) AS refused "
    f"FROM failure_records f {_OF_MODALITY.format(sop='f.sop_uid')} "
    "AND f.resolved_at IS NULL GROUP BY f.tier",
)


def redact(reason: str | None) -> str:
    """The reason with every path or URL replaced by ``[file]`` (they may name a patient)."""
    return _PATH.sub("[file]", reason or "")


@dataclass(frozen=True)
class TaskRef:
    """The Airflow task instance that made (or failed) something; ``dag_id`` "cli" by hand."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int


@dataclass(frozen=True)
class TierRow:
    """One tier of the overview: savings, quality and gate outcomes, joined by name."""

    tier: str
    studies: int = 0
    instances: int = 0
    original_bytes: int = 0
    compressed_bytes: int = 0
    zip_bytes: int = 0
    ratio: float | None = None
    pixel_ratio: float | None = None
    frames: int = 0
    psnr_min: float | None = None
    psnr_median: float | None = None
    ssim_min: float | None = None
    ssim_mean: float | None = None
    max_abs_diff: float | None = None
    psnr_range_min: float | None = None  # against each frame's own range, as gates judge
    ssim_range_min: float | None = None
    gate_passed: int = 0
    gate_failed: int = 0
    failed: int = 0
    refused: int = 0


@dataclass(frozen=True)
class Failure:
    study_uid: str | None
    tier: str | None
    sop_uid: str | None
    status: str
    reason: str
    last_seen: datetime | None
    task: TaskRef | None


@dataclass(frozen=True)
class StudyTierRef:
    """A study x tier named in a list (worst quality, latest results)."""

    study_uid: str
    tier: str
    status: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Table:
    """Rows of a view shown as they are (the backlog): column names and display values."""

    columns: list[str]
    rows: list[list[Any]]
    total: int


@dataclass(frozen=True)
class Overview:
    tiers: list[TierRow]
    failures: list[Failure]
    failures_total: int
    unidentified: int
    backlog: Table | None
    worst: list[StudyTierRef]
    latest: list[StudyTierRef]
    modalities: list[str] = field(default_factory=list)  # the filter's choices
    modality: str | None = None  # the tier figures are of this modality's series only
    delivery: Table | None = None  # the delivery_by_tier view (dcmtier viewer-check --record)
    # the last `dcmtier estimate` per tier beside what is stored (view estimate_vs_actual);
    # None while the catalogue has no such view
    forecast: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Job:
    status: str
    instances: int | None
    counts: dict[str, int]
    error: str
    started_at: datetime | None
    finished_at: datetime | None
    run_id: str
    task: TaskRef | None  # None when run by hand (``dcmtier process``)


@dataclass(frozen=True)
class LineageRow:
    series_uid: str
    source_sop_uid: str
    derived_sop_uid: str
    frames: int
    pixel_ratio: float
    psnr_min: float | None
    gate: str
    strategy: str
    layer: int | None
    run_id: str
    try_number: int
    created_at: datetime | None
    output_uri: str = field(repr=False)  # to decode the worst frame; never shown


@dataclass(frozen=True)
class Package:
    uri: str = field(repr=False)  # to serve the download; never shown
    bytes: int
    sha256: str
    members: int


@dataclass(frozen=True)
class StudyTier:
    study_uid: str
    tier: str
    job: Job | None
    lineage: list[LineageRow]
    failures: list[Failure]
    package: Package | None
    published: list[Published] = field(default_factory=list)  # DICOMweb archives holding it


@dataclass(frozen=True)
class Figures:
    """The costly part of the overview: aggregates over every derived instance and frame."""

    tiers: list[TierRow]
    worst: list[StudyTierRef]


def figures(connection: Connection, modality: str | None = None) -> Figures:
    """The tier table and the lowest-quality list, of every series or of one ``modality``."""
    if modality is None:
        return Figures(_tiers(connection, TIER_FIGURES), _worst(connection))
    return Figures(_tiers(connection, TIER_FIGURES_OF_MODALITY, {"modality": modality}), [])


def modalities(connection: Connection) -> list[str]:
    """The modalities of the series recorded, for the overview's filter."""
    found = connection.execute(text("SELECT DISTINCT modality FROM series ORDER BY modality"))
    return [str(m) for m in found.scalars()]


def figures_version(connection: Connection) -> tuple[Any, ...]:
    """Changes whenever the figures may have: an attempt started or finished, a failure moved.

    Cheap (primary keys and small tables), so the overview reuses the figures until it changes.
    """
    return tuple(
        connection.execute(
            text(
                "SELECT (SELECT COUNT(*) FROM jobs), (SELECT MAX(id) FROM jobs), "
                "(SELECT MAX(finished_at) FROM jobs), (SELECT COUNT(*) FROM failure_records "
                "WHERE resolved_at IS NULL), (SELECT MAX(last_seen_at) FROM failure_records)"
            )
        ).one()
    )


def overview(
    connection: Connection, known: Figures | None = None, modality: str | None = None
) -> Overview:
    """Everything the overview page shows; ``known`` figures are used instead of querying.

    With a ``modality``, the tier figures are of that modality's series (``known`` must be
    too); failures, backlog and the latest results stay those of the whole catalogue."""
    failures, total = _failures(connection, where="", params={}, limit=ROWS_SHOWN)
    found = known or figures(connection, modality)
    return Overview(
        tiers=found.tiers,
        failures=failures,
        failures_total=total,
        unidentified=int(
            connection.execute(
                text("SELECT COUNT(*) FROM unidentified_files WHERE resolved_at IS NULL")
            ).scalar_one()
        ),
        backlog=_view_table(connection, "backlog"),
        worst=found.worst,
        latest=_latest(connection),
        modalities=modalities(connection),
        modality=modality,
        delivery=_view_table(connection, "delivery_by_tier"),
        forecast=_forecast(connection),
    )


def _forecast(connection: Connection) -> list[dict[str, Any]] | None:
    """The view ``estimate_vs_actual`` (the last estimate per tier, forecast against stored),
    or None while the catalogue has no such view."""
    if "estimate_vs_actual" not in inspect(connection).get_view_names():
        return None
    rows = connection.execute(text("SELECT * FROM estimate_vs_actual ORDER BY tier"))
    return [dict(row._mapping) for row in rows]


def study_tier(connection: Connection, study_uid: str, tier: str) -> StudyTier:
    """One study x tier: its latest attempt, lineage, open failures and package."""
    params = {"s": study_uid, "t": tier}
    failures, _ = _failures(
        connection, where="AND f.study_uid = :s AND f.tier = :t", params=params, limit=1000
    )
    package = connection.execute(
        text(
            "SELECT uri, bytes, sha256, member_count FROM packages "
            "WHERE study_uid = :s AND tier = :t"
        ),
        params,
    ).first()
    return StudyTier(
        study_uid=study_uid,
        tier=tier,
        job=_job(connection, params),
        lineage=_lineage(connection, params),
        failures=failures,
        published=published(connection, study_uid, tier),
        package=Package(str(package[0]), int(package[1]), str(package[2]), int(package[3]))
        if package
        else None,
    )


def task_study_tier(connection: Connection, task: TaskRef) -> tuple[str, str] | None:
    """The study x tier an Airflow task instance worked on (its latest recorded attempt)."""
    row = connection.execute(
        text(
            "SELECT study_uid, tier FROM jobs WHERE dag_id = :d AND run_id = :r "
            "AND task_id = :t AND map_index = :m ORDER BY id DESC LIMIT 1"
        ),
        {"d": task.dag_id, "r": task.run_id, "t": task.task_id, "m": task.map_index},
    ).first()
    return (str(row[0]), str(row[1])) if row else None


def lossless_copy(connection: Connection, source_sop_uid: str) -> str | None:
    """Where to read a source's exact pixels: a bit-exact derived copy, else the source as
    last found (``file_locations``, whose file key for an instance is its SOP UID)."""
    row = connection.execute(
        text(
            "SELECT d.output_uri FROM derived_instances d JOIN tiers t ON t.name = d.tier "
            "WHERE d.source_sop_uid = :sop AND t.lossless AND t.near = 0 ORDER BY d.tier"
        ),
        {"sop": source_sop_uid},
    ).first()
    if row:
        return str(row[0])
    row = connection.execute(
        text(
            "SELECT uri FROM file_locations WHERE file_key = :sop "
            "ORDER BY last_seen_at DESC, id DESC LIMIT 1"
        ),
        {"sop": source_sop_uid},
    ).first()
    return str(row[0]) if row else None


def _tiers(
    connection: Connection, queries: Sequence[str], params: Mapping[str, Any] | None = None
) -> list[TierRow]:
    rows: dict[str, dict[str, Any]] = {}
    for sql in queries:
        for row in connection.execute(text(sql), params or {}).mappings():
            found = rows.setdefault(str(row["tier"]), {"tier": str(row["tier"])})
            found.update({k: _plain(v) for k, v in row.items() if v is not None and k != "tier"})
    return [TierRow(**values) for values in rows.values()]


def _plain(value: Any) -> Any:
    """PostgreSQL sums integers as NUMERIC: back to int (or float) for the pages."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _failures(
    connection: Connection, *, where: str, params: Mapping[str, Any], limit: int
) -> tuple[list[Failure], int]:
    base = (
        f"FROM failure_records f JOIN jobs j ON j.id = f.job_id WHERE f.resolved_at IS NULL {where}"
    )
    total = int(connection.execute(text(f"SELECT COUNT(*) {base}"), params).scalar_one())
    result = connection.execute(
        text(
            f"SELECT f.study_uid, f.tier, f.sop_uid, f.status, f.reason, f.last_seen_at, "
            f"j.dag_id, j.run_id, j.task_id, j.map_index {base} "
            f"ORDER BY f.last_seen_at DESC, f.id DESC LIMIT {int(limit)}"
        ),
        params,
    )
    failures = [
        Failure(r[0], r[1], r[2], str(r[3]), redact(r[4]), r[5], _task(r[6], r[7], r[8], r[9]))
        for r in result
    ]
    return failures, total


def _task(dag_id: str, run_id: str, task_id: str, map_index: int) -> TaskRef | None:
    return TaskRef(dag_id, run_id, task_id, int(map_index)) if dag_id != "cli" else None


def _view_table(connection: Connection, view: str) -> Table | None:
    """A view's rows as they are, or None while the catalogue has no such view."""
    if view not in inspect(connection).get_view_names():
        return None
    result = connection.execute(text(f"SELECT * FROM {view} LIMIT {ROWS_SHOWN}"))
    shown = [i for i, name in enumerate(result.keys()) if not HIDDEN_COLUMN.search(name)]
    columns = [list(result.keys())[i] for i in shown]
    rows = [[row[i] for i in shown] for row in result]
    total = int(connection.execute(text(f"SELECT COUNT(*) FROM {view}")).scalar_one())
    return Table(columns, rows, total)


def _worst(connection: Connection) -> list[StudyTierRef]:
    """The study x tiers of lowest PSNR against their frames' own range (what gates judge);
    an instance measured before that range was recorded counts with its nominal PSNR."""
    result = connection.execute(
        text(
            "SELECT study_uid, tier, MIN(COALESCE(psnr_range_min, psnr_min)) AS psnr, "
            "MIN(COALESCE(ssim_range_min, ssim_min)) AS ssim "
            "FROM derived_instances WHERE psnr_min IS NOT NULL AND psnr_min < 1e308 "
            f"GROUP BY study_uid, tier ORDER BY psnr ASC LIMIT {WORST_SHOWN}"
        )
    )
    return [
        StudyTierRef(
            str(r[0]),
            str(r[1]),
            "",
            f"PSNR min {r[2]:.1f} dB, SSIM min {r[3]:.4f}"
            if r[3] is not None
            else f"PSNR min {r[2]:.1f} dB",
        )
        for r in result
        if r[2] is not None and r[2] != float("inf")  # exact copies are not "lowest quality"
    ]


def _latest(connection: Connection) -> list[StudyTierRef]:
    result = connection.execute(
        text(
            f"SELECT study_uid, tier, status, instances, finished_at FROM jobs "
            f"ORDER BY id DESC LIMIT {WORST_SHOWN}"
        )
    )
    return [
        StudyTierRef(
            str(r[0]), str(r[1]), str(r[2]), f"{r[3]} instances" if r[3] is not None else ""
        )
        for r in result
    ]


def _job(connection: Connection, params: Mapping[str, Any]) -> Job | None:
    row = connection.execute(
        text(
            "SELECT status, instances, counts, error, started_at, finished_at, dag_id, run_id, "
            "task_id, map_index FROM jobs WHERE study_uid = :s AND tier = :t "
            "ORDER BY id DESC LIMIT 1"
        ),
        params,
    ).first()
    if row is None:
        return None
    counts = row[2] if isinstance(row[2], dict) else _json(row[2])
    return Job(
        status=str(row[0]),
        instances=row[1],
        counts={str(k): int(v) for k, v in counts.items()},
        error=redact(row[3]),
        started_at=row[4],
        finished_at=row[5],
        run_id=str(row[7]),
        task=_task(str(row[6]), str(row[7]), str(row[8]), int(row[9])),
    )


def _json(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) and value else {}
    return loaded if isinstance(loaded, dict) else {}


def _lineage(connection: Connection, params: Mapping[str, Any]) -> list[LineageRow]:
    result = connection.execute(
        text(
            "SELECT d.series_uid, d.source_sop_uid, d.derived_sop_uid, d.frames, d.pixel_ratio, "
            "d.psnr_min, d.gate_passed, d.gate, d.strategy, d.layer, j.run_id, j.try_number, "
            "d.created_at, d.output_uri FROM derived_instances d JOIN jobs j ON j.id = d.job_id "
            "WHERE d.study_uid = :s AND d.tier = :t"
        ),
        params,
    )
    rows = [
        LineageRow(
            series_uid=str(r[0]),
            source_sop_uid=str(r[1]),
            derived_sop_uid=str(r[2]),
            frames=int(r[3]),
            pixel_ratio=float(r[4]),
            psnr_min=r[5],
            gate="passed" if r[6] else redact(r[7]) or "failed",
            strategy=str(r[8] or ""),
            layer=r[9],
            run_id=str(r[10]),
            try_number=int(r[11]),
            created_at=r[12],
            output_uri=str(r[13]),
        )
        for r in result
    ]
    return sorted(rows, key=lambda r: (r.series_uid, uid_order(r.source_sop_uid)))


def uid_order(uid: str) -> tuple[int, ...]:
    """A UID's numeric components, so ``1.2.10`` sorts after ``1.2.9`` (acquisition order for
    UIDs that end in a counter; the catalogue records no slice position)."""
    return tuple(int(part) if part.isdigit() else -1 for part in uid.split("."))
