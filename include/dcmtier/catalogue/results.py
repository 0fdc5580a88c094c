"""Rows for one finished study x tier: derived instances with their frames, package, failures."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dcmtier.catalogue.models import FAILURE_STATUSES
from dcmtier.errors import CatalogueError
from dcmtier.records import (
    CARRIED,
    GATE_FAILED,
    LAYERED,
    OK,
    PER_TIER,
    STRATEGIES,
    StudyTierResult,
    TierResult,
)
from dcmtier.tiers import Tier

JOB_KEY = ""  # source_key of a failure of the attempt as a whole


@dataclass
class DerivedRows:
    """One derived instance and its per-frame quality rows (``derived_id`` filled on write)."""

    instance: dict[str, Any]
    frames: list[dict[str, Any]]


def location_uri(location: str) -> str:
    """Where an output is, as a URI: a URL (an object on a store) as it is, a path as file://."""
    return location if "://" in location else Path(location).absolute().as_uri()


def tier_row(tier: Tier) -> dict[str, Any]:
    return tier.as_dict()


def derived_rows(result: StudyTierResult, job_id: int, now: datetime) -> list[DerivedRows]:
    """Every output kept (``ok``, and ``gate_failed`` kept by ``keep``) of ``result``; a
    ``rejected`` output is not on disk and not counted."""
    if result.instances and not result.results:
        raise CatalogueError(
            f"study {result.study_uid} tier {result.tier}: the result carries no per-instance "
            "results; pass the StudyTierResult that process_study returned, not its dict"
        )
    return [_derived(r, result.study_uid, job_id, now) for r in _written(result.results)]


def _written(results: Iterable[TierResult]) -> Iterator[TierResult]:
    for r in results:
        if r.status in (OK, GATE_FAILED) and r.output and r.sop_instance_uid_in:
            yield r


def _derived(r: TierResult, study_uid: str, job_id: int, now: datetime) -> DerivedRows:
    metrics = r.frame_metrics
    ssims = [m["ssim"] for m in metrics if m.get("ssim") is not None]
    strategy, layer = _encoding(r)
    instance = {
        "source_sop_uid": r.sop_instance_uid_in,
        "tier": r.tier,
        "study_uid": study_uid,
        "series_uid": r.series_instance_uid or "",
        "derived_sop_uid": r.sop_instance_uid_out or r.sop_instance_uid_in,
        "job_id": job_id,
        "output_uri": location_uri(str(r.output)),
        "bytes": r.file_bytes_out or 0,
        "frames": r.frames or len(metrics),
        "pixel_bytes_in": r.pixel_bytes_in or 0,
        "pixel_bytes_out": r.pixel_bytes_out or 0,
        "pixel_ratio": r.pixel_ratio or 0.0,
        "file_ratio": r.file_ratio or 0.0,
        "psnr_min": min((float(m["psnr_db"]) for m in metrics), default=None),
        "ssim_min": min(ssims, default=None),
        "psnr_range_min": _least(metrics, "psnr_db_range"),
        "ssim_range_min": _least(metrics, "ssim_range"),
        "max_abs_diff": max((float(m["max_abs_diff"]) for m in metrics), default=None),
        "gate_passed": r.status == OK,
        "gate": r.gate,
        "created_at": now,
        "strategy": strategy,
        "layer": layer,
        "fallback_frames": r.fallback_frames,
        "bits_stored": _bits_stored(r),
        "codec": r.codec,
        "transfer_syntax": r.transfer_syntax,
    }
    return DerivedRows(instance, [_frame(m) for m in metrics])


def _encoding(r: TierResult) -> tuple[str, int | None]:
    """The strategy, and for a layered cut its 1-based layer, named in the output's params.

    An output whose params name no strategy was encoded on its own (``per_tier``).
    """
    strategy = str(r.params.get("strategy") or PER_TIER)
    layer = r.params.get("layer")
    if strategy not in STRATEGIES or (strategy == LAYERED and not isinstance(layer, int)):
        raise CatalogueError(
            f"instance {r.sop_instance_uid_in} tier {r.tier}: encoded with strategy "
            f"{strategy!r}, layer {layer!r}; the catalogue knows {', '.join(STRATEGIES)}, "
            f"and a {LAYERED} output needs an integer layer"
        )
    return strategy, layer if strategy == LAYERED else None


def _bits_stored(r: TierResult) -> int | None:
    value = r.params.get("bits_stored")
    return value if isinstance(value, int) else None


def _frame(m: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "frame": int(m["frame"]),
        "psnr_db": float(m["psnr_db"]),  # +inf for an exact frame, kept as such
        "psnr_peak": float(m["psnr_peak"]),
        "ssim": None if m.get("ssim") is None else float(m["ssim"]),
        "mse": float(m["mse"]),
        "max_abs_diff": float(m["max_abs_diff"]),
        "mean_abs_diff": float(m["mean_abs_diff"]),
        "pixel_match_pct": float(m["pixel_match_pct"]),
        "unit": str(m["unit"]),
        "gate": m.get("gate"),
        "pixel_ratio": _ratio(m.get("pixel_bytes_in"), m.get("pixel_bytes_out")),
        "gate_action": m.get("gate_action"),
        "fell_back": bool(m.get("fell_back")),
        "psnr_db_range": _number(m.get("psnr_db_range")),  # +inf for an exact frame
        "ssim_range": _number(m.get("ssim_range")),
        "data_range": _number(m.get("data_range")),
    }


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _least(metrics: Sequence[Mapping[str, Any]], name: str) -> float | None:
    """The lowest of the frames' ``name``, None when no frame has it."""
    return min((float(m[name]) for m in metrics if m.get(name) is not None), default=None)


def _ratio(pixel_in: object, pixel_out: object) -> float | None:
    """The frame's achieved pixel ratio; None when its sizes are not known."""
    if not isinstance(pixel_in, int | float) or not isinstance(pixel_out, int | float):
        return None
    return float(pixel_in) / float(pixel_out) if pixel_out else None


def package_row(result: StudyTierResult, job_id: int, now: datetime) -> dict[str, Any] | None:
    if not result.package or result.package_bytes is None or not result.package_sha256:
        return None
    return {
        "study_uid": result.study_uid,
        "tier": result.tier,
        "job_id": job_id,
        "uri": location_uri(result.package),
        "bytes": result.package_bytes,
        "sha256": result.package_sha256,
        "member_count": sum(result.counts.get(s, 0) for s in (OK, GATE_FAILED, CARRIED)),
        "created_at": now,
    }


def failure_rows(result: StudyTierResult, job_id: int, now: datetime) -> list[dict[str, Any]]:
    """One row per failed, refused, gate-failed (kept) or rejected instance, keyed by SOP UID
    else file."""
    rows = []
    for f in result.failures:
        status = str(f.get("status"))
        if status not in FAILURE_STATUSES:
            continue
        sop_uid = f.get("sop_uid") or None
        source = f.get("source") or None
        rows.append(
            failure_row(
                result.study_uid,
                result.tier,
                job_id,
                now,
                key=f.get("key") or sop_uid or source or JOB_KEY,
                sop_uid=sop_uid,
                file=source,
                status=status,
                reason=str(f.get("reason") or status),
                rule=f.get("rule"),
            )
        )
    return rows


def failure_row(
    study_uid: str, tier: str, job_id: int, now: datetime, *, key: str, **fields: Any
) -> dict[str, Any]:
    return {
        "study_uid": study_uid,
        "tier": tier,
        "source_key": key,
        "job_id": job_id,
        "first_seen_at": now,
        "last_seen_at": now,
        "resolved_at": None,
        **fields,
    }


def source_key(r: TierResult) -> str:
    """The key of one processed file's failure rows: a given key, else its SOP UID, else file."""
    return str(r.params.get("key") or r.sop_instance_uid_in or r.source)


def judged_keys(result: StudyTierResult) -> set[str]:
    """The failure keys this attempt judged: its instances' and its own (``JOB_KEY``)."""
    return {JOB_KEY, *(source_key(r) for r in result.results)}


def job_summary(result: StudyTierResult) -> str | None:
    """A one-line error for a job that was not ``ok``: what went wrong, counted."""
    bad = {k: v for k, v in result.counts.items() if k not in (OK, "skipped", GATE_FAILED, CARRIED)}
    if result.status == OK or not bad:
        return None
    counted = ", ".join(f"{v} {k}" for k, v in sorted(bad.items()))
    return f"{counted} of {result.instances} instances; see the failures view"
