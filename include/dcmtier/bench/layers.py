"""Layered against per-tier encoding in the bench's unit of work (issue #7).

Both strategies run the same 13 default tiers on the same study with all cores; the twelve
J2K rate tiers are compared on the encoder time they cost (the layered encode is shared by
the twelve; the lossless tier is left out, it is encoded the same way by both), on the bytes
each tier's outputs take, and on their PSNR, instance by instance.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from dcmtier.bench.timing import spread, summary, target_row
from dcmtier.tiers import get_tier

CPU_FACTOR, SIZE_PCT, PSNR_DB = 5.0, 2.0, 0.6  # the "done when"
Outputs = Mapping[tuple[str, str], tuple[int, float]]  # (tier, source SOP) -> (bytes, PSNR)


def compare(values: Mapping[str, list[float]], outputs: Mapping[str, Outputs]) -> dict[str, Any]:
    """``results.json``'s ``layered_vs_per_tier``: CPU, sizes and PSNR per J2K rate tier."""
    layered = values.get("unit/layered/jobs_N/j2k_rate_encode_s", [])
    per_tier = values.get("unit/per_tier/jobs_N/j2k_rate_encode_s", [])
    if not layered or not per_tier or set(outputs) < {"layered", "per_tier"}:
        return {"measured": False, "reason": "needs --strategies layered per_tier"}
    factors = [p / lay for p, lay in zip(per_tier, layered, strict=False) if lay > 0]
    tiers = {
        tier: _tier(tier, outputs["layered"], outputs["per_tier"])
        for tier in sorted(
            {t for t, _ in outputs["layered"]} & {t for t, _ in outputs["per_tier"]},
            key=lambda name: -float(get_tier(name).target_ratio or 0),
        )
    }
    return {
        "measured": True,
        "method": (
            "encoder seconds of the 12 J2K rate tiers summed over the 13-tier unit of work "
            "with all cores (layered: one encode per frame shared by the tiers, plus the "
            "cuts); sizes and mean PSNR per source instance from the first run"
        ),
        "j2k_rate_encode_s": {"layered": summary(layered), "per_tier": summary(per_tier)},
        "cpu_factor_per_tier_over_layered": summary(factors),
        "tiers": tiers,
    }


def _tier(tier: str, layered: Outputs, per_tier: Outputs) -> dict[str, Any]:
    keys = sorted(k for k in layered if k[0] == tier and k in per_tier)
    ours, theirs = sum(layered[k][0] for k in keys), sum(per_tier[k][0] for k in keys)
    sizes = [100 * (layered[k][0] / per_tier[k][0] - 1) for k in keys]
    psnr = [
        layered[k][1] - per_tier[k][1]
        for k in keys
        if math.isfinite(layered[k][1]) and math.isfinite(per_tier[k][1])
    ]
    total = 100 * (ours / theirs - 1) if theirs else None
    mean = statistics.fmean(psnr) if psnr else None
    return {
        "target_ratio": get_tier(tier).target_ratio,
        "instances": len(keys),
        "bytes": {"layered": ours, "per_tier": theirs},
        "size_total_pct": None if total is None else round(total, 3),
        "size_instance_pct": spread(sizes),
        "instances_beyond_size_pct": sum(abs(s) > SIZE_PCT for s in sizes),
        "mean_psnr_diff_db": None if mean is None else round(mean, 3),
        "psnr_diff_db": spread(psnr),
        "instances_beyond_psnr_db": sum(abs(d) > PSNR_DB for d in psnr),
    }


def targets(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's criteria, judged on the study: CPU factor (median), size total, mean PSNR."""
    if not section.get("measured"):
        return []
    factor = section["cpu_factor_per_tier_over_layered"]["median"]
    rows = [_row("J2K CPU of the 12 rate tiers, per_tier / layered", factor, CPU_FACTOR)]
    for tier, entry in section["tiers"].items():
        size, psnr = entry["size_total_pct"], entry["mean_psnr_diff_db"]
        rows.append(
            _row(
                f"{tier} layered bytes vs per_tier (%)", size, SIZE_PCT, at_most=True, absolute=True
            )
        )
        rows.append(
            _row(
                f"{tier} layered PSNR vs per_tier (dB)", psnr, PSNR_DB, at_most=True, absolute=True
            )
        )
    return rows


def _row(
    name: str, value: float | None, limit: float, *, at_most: bool = False, absolute: bool = False
) -> dict[str, Any]:
    sign = "|value| " if absolute else ""
    label = f"{name} (issue #7, {sign}judged on the study)"
    return target_row(label, value, limit, at_most=at_most, absolute=absolute)
