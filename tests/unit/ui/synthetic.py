"""A synthetic catalogue: many studies x the 13 default tiers, rows only (no files).

Used to measure how fast the pages render at archive scale (docs/operators/ui.md):
``python -m tests.unit.ui.synthetic URL --studies 1000`` fills an upgraded catalogue and
prints the render time of the overview page and of one study page, on that catalogue.
Quality values follow the reference survey's curve, with noise, so the charts look real.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dcmtier.catalogue import Catalogue
from dcmtier.catalogue.models import (
    DerivedInstance,
    FailureRecord,
    FrameQuality,
    Instance,
    Job,
    Package,
    Series,
    Study,
    TierRow,
)
from dcmtier.tiers import DEFAULT_TIERS, TIERS
from dcmtier.ui.reference import SURVEY

ROOT = "2.25.7"  # UIDs below this root are synthetic
SOURCE_BYTES = 526_000  # a 512 x 512 CT slice
PIXEL_BYTES = 512 * 512 * 2


def fill(url: str, *, studies: int, instances: int = 10, seed: int = 1) -> dict[str, Any]:
    """Write ``studies`` x the default tiers x ``instances`` into the catalogue at ``url``."""
    rng = random.Random(seed)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    rows: dict[type[Any], list[dict[str, Any]]] = {
        m: []
        for m in (
            Study,
            Series,
            Instance,
            TierRow,
            Job,
            DerivedInstance,
            FrameQuality,
            Package,
            FailureRecord,
        )
    }
    for name in DEFAULT_TIERS:
        t = TIERS[name]
        rows[TierRow].append(
            {
                "name": name,
                "codec": t.codec.label,
                "lossless": t.lossless,
                "target_ratio": t.target_ratio,
                "near": t.near,
                "transfer_syntax": t.transfer_syntax,
                "use": t.use,
            }
        )
    job_id = derived_id = 0
    for s in range(studies):
        study = f"{ROOT}.{s + 1}"
        series = f"{study}.1"
        rows[Study].append(
            {"study_uid": study, "modalities": "CT", "first_seen_at": now, "updated_at": now}
        )
        rows[Series].append(
            {"series_uid": series, "study_uid": study, "modality": "CT", "series_number": 1}
        )
        sops = [f"{series}.{i + 1}" for i in range(instances)]
        for sop in sops:
            rows[Instance].append(
                {
                    "sop_uid": sop,
                    "series_uid": series,
                    "study_uid": study,
                    "bytes": SOURCE_BYTES,
                    "sha256": "0" * 64,
                    "modality": "CT",
                    "discovered_at": now,
                }
            )
        for name in DEFAULT_TIERS:
            job_id += 1
            bad = 1 if (s % 50 == 7 and name == "j2k-r20") else 0  # a few partial study x tiers
            rows[Job].append(_job(job_id, study, name, s=s, now=now, n=instances, bad=bad))
            for i, sop in enumerate(sops[bad:], start=bad):
                derived_id += 1
                ratio, psnr, ssim = _quality(name, rng)
                out = max(1, int(PIXEL_BYTES / ratio))
                rows[DerivedInstance].append(
                    {
                        "id": derived_id,
                        "source_sop_uid": sop,
                        "tier": name,
                        "study_uid": study,
                        "series_uid": series,
                        "derived_sop_uid": f"{sop}.{len(name)}",
                        "job_id": job_id,
                        "output_uri": f"file:///data/derived/{name}/{sop}.dcm",
                        "bytes": out + 1600,
                        "frames": 1,
                        "pixel_bytes_in": PIXEL_BYTES,
                        "pixel_bytes_out": out,
                        "pixel_ratio": PIXEL_BYTES / out,
                        "file_ratio": SOURCE_BYTES / (out + 1600),
                        "psnr_min": psnr,
                        "ssim_min": ssim,
                        "max_abs_diff": _max_diff(psnr),
                        "gate_passed": psnr > 40,
                        "gate": None if psnr > 40 else "psnr < 40 dB",
                        "created_at": now,
                        "strategy": "layered",
                        "layer": None,
                    }
                )
                rows[FrameQuality].append(
                    {
                        "derived_id": derived_id,
                        "frame": 0,
                        "psnr_db": psnr,
                        "psnr_peak": 4095.0,
                        "ssim": ssim,
                        "mse": 0.0 if math.isinf(psnr) else 4095**2 / 10 ** (psnr / 10),
                        "max_abs_diff": _max_diff(psnr),
                        "mean_abs_diff": _max_diff(psnr) / 9,
                        "pixel_match_pct": 100.0 if math.isinf(psnr) else 5.0,
                        "unit": "HU",
                        "gate": None,
                    }
                )
                del i
            if bad:
                rows[FailureRecord].append(
                    {
                        "study_uid": study,
                        "tier": name,
                        "source_key": sops[0],
                        "sop_uid": sops[0],
                        "file": f"/landing/DOE_JANE/{s}/CT0001.dcm",
                        "status": "failed",
                        "reason": f"/landing/DOE_JANE/{s}/CT0001.dcm: pixel data cannot be decoded",
                        "rule": None,
                        "job_id": job_id,
                        "first_seen_at": now,
                        "last_seen_at": now + timedelta(seconds=s),
                        "resolved_at": None,
                    }
                )
            rows[Package].append(
                {
                    "study_uid": study,
                    "tier": name,
                    "job_id": job_id,
                    "uri": f"file:///data/packages/{study}/{name}.zip",
                    "bytes": SOURCE_BYTES,
                    "sha256": "0" * 64,
                    "member_count": instances - bad,
                    "created_at": now,
                }
            )
    catalogue = Catalogue.connect(url)
    with catalogue.engine.begin() as connection:
        for model, values in rows.items():
            for start in range(0, len(values), 20_000):
                connection.execute(sa.insert(model), values[start : start + 20_000])
    catalogue.close()
    return {model.__tablename__: len(values) for model, values in rows.items()}


def _job(
    job_id: int, study: str, tier: str, *, s: int, now: datetime, n: int, bad: int
) -> dict[str, Any]:
    counts = {"ok": n - bad, **({"failed": bad} if bad else {})}
    return {
        "id": job_id,
        "study_uid": study,
        "tier": tier,
        "dag_id": "dicom_archive_compression",
        "run_id": f"scheduled__2026-11-{1 + s % 28:02d}T00:00:00+00:00",
        "task_id": "compress",
        "map_index": s,
        "try_number": 1,
        "status": "partial" if bad else "ok",
        "error": None,
        "instances": n,
        "counts": counts,
        "software": {"dcmtier": "0.1.0"},
        "parameters": {},
        "started_at": now,
        "finished_at": now + timedelta(seconds=3),
    }


def _quality(tier: str, rng: random.Random) -> tuple[float, float, float | None]:
    """(achieved pixel ratio, PSNR, SSIM) near the survey's curve for the tier's rate."""
    target = TIERS[tier].target_ratio
    if target is None:
        return 3.0 * rng.uniform(0.9, 1.1), math.inf, 1.0
    ratio = target * rng.uniform(0.96, 1.04)
    near = min(SURVEY, key=lambda p: abs(math.log(p.pixel_ratio / ratio)))
    return ratio, near.psnr_db + 6 + rng.gauss(0, 1.5), min(1.0, near.ssim + rng.gauss(0.01, 0.004))


def _max_diff(psnr: float) -> float:
    return 0.0 if math.isinf(psnr) else round(4095 / 10 ** (psnr / 20) * 6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="an empty catalogue URL (it is upgraded first)")
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=10)
    args = parser.parse_args()
    Catalogue.upgrade(args.url)
    started = time.perf_counter()
    print(fill(args.url, studies=args.studies, instances=args.instances))
    print(f"filled in {time.perf_counter() - started:.1f} s")
    from tests.unit.ui.timing import render_times

    for page, seconds in render_times(args.url, study=f"{ROOT}.8", tier="j2k-r20").items():
        print(f"{page}: {', '.join(f'{s * 1000:.0f} ms' for s in seconds)}")


if __name__ == "__main__":
    main()
