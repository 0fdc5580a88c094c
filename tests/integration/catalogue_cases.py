"""What the catalogue tests share on SQLite (tests/unit) and PostgreSQL (tests/integration).

Generated studies, a real ``process_study`` run into a catalogue, and sums taken from the files
on disk that the views must equal.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import inspect, text

from dcmtier.catalogue import Catalogue, JobContext
from dcmtier.catalogue.engine import make_engine
from dcmtier.codec.policy import Policy
from dcmtier.discovery.files import discover
from dcmtier.records import StudyTierResult
from dcmtier.sample import write_ct_series
from dcmtier.tiers import resolve_tiers
from dcmtier.work.config import RunConfig
from dcmtier.work.layout import Layout
from dcmtier.work.study import process_study

TIERS = ("j2k-lossless", "j2k-r10", "htj2k-r10")  # all pass their gates on 64 x 64 slices
# Two J2K rate tiers are cut from one layered encode, layer 1 the most compressed.
LAYERED_TIERS = ("j2k-lossless", "j2k-r10", "j2k-r20")
LAYERED_ENCODING = {
    "j2k-lossless": ("per_tier", None),
    "j2k-r20": ("layered", 1),
    "j2k-r10": ("layered", 2),
}
# the analysts' views a migrated catalogue has (a literal: the tests check the code against it)
VIEWS = {
    "savings_by_tier",
    "savings_by_study",
    "quality_by_tier",
    "lineage",
    "failures",
    "backlog",
    "savings_by_modality",
    "savings_by_month",
    "quality_by_modality",
    "quality_by_scanner",
    "delivery_by_tier",
    "estimate_vs_actual",
}
BY_DESCRIPTOR = {
    "savings_by_modality",
    "savings_by_month",
    "quality_by_modality",
    "quality_by_scanner",
}
TABLES = (
    "studies",
    "series",
    "instances",
    "tiers",
    "jobs",
    "derived_instances",
    "frame_quality",
    "packages",
    "failure_records",
    "file_locations",
)


def make_landing(root: Path) -> Path:
    """Two 3-slice studies; the second slice of study ``a`` has its pixel data cut short.

    Returns the truncated file.
    """
    write_ct_series(root / "a", slices=3, rows=64, columns=64, seed=11)
    write_ct_series(root / "b", slices=3, rows=64, columns=64, seed=12, signed=False)
    broken = root / "a" / "CT0002.dcm"
    broken.write_bytes(broken.read_bytes()[:-3000])  # header intact: a recorded instance
    return broken


def run_all(
    landing: Path,
    out: Path,
    catalogue: Catalogue,
    *,
    run_id: str = "run-1",
    tiers: Sequence[str] = TIERS,
    context: JobContext | None = None,
    strategy: str = "layered",
    policy: Policy | None = None,
) -> list[StudyTierResult]:
    studies, unidentified = discover([landing])
    assert not unidentified
    results: list[StudyTierResult] = []
    for study in studies:
        results += process_study(
            study,
            resolve_tiers(list(tiers)),
            RunConfig(
                Layout(out),
                run_id,
                catalogue=catalogue,
                context=context,
                strategy=strategy,
                policy=policy or Policy(),
            ),
        )
    return results


# j2k-r20 breaks the review gate on these 64 x 64 slices: ``keep`` holds every tier at its own
# layer (``fallback`` would recode those frames at a longer cut)
KEEP = Policy().with_gate_action("keep")


def view(catalogue: Catalogue, name: str) -> list[dict[str, Any]]:
    """Every row of a view (or table), as dicts."""
    with catalogue.engine.connect() as connection:
        return [dict(r) for r in connection.execute(text(f"SELECT * FROM {name}")).mappings()]


def sizes(paths: Sequence[Path] | Any) -> int:
    return sum(os.path.getsize(p) for p in paths)


def expected_savings(landing: Path, out: Path, broken: Path) -> dict[str, dict[str, int]]:
    """savings_by_tier as ``du -b`` would give it: derived files, their sources, the ZIPs."""
    sources = [p for p in landing.rglob("*.dcm") if p != broken]  # broken: no output anywhere
    expected = {}
    for tier_dir in sorted((out / "derived").iterdir()):
        derived = list(tier_dir.rglob("*.dcm"))
        expected[tier_dir.name] = {
            "studies": len(list(tier_dir.iterdir())),
            "instances": len(derived),
            "original_bytes": sizes(sources),
            "compressed_bytes": sizes(derived),
            "saved_bytes": sizes(sources) - sizes(derived),
            "zip_bytes": sizes((out / "packages").glob(f"*/{tier_dir.name}.zip")),
        }
    return expected


def expected_quality(out: Path) -> dict[str, dict[str, Any]]:
    """quality_by_tier computed in Python from the Parquet dataset the same run wrote."""
    frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for part in (out / "quality").rglob("*.parquet"):
        for row in pq.read_table(part).to_pylist():
            frames[row["tier"]].append(row)
    expected = {}
    for tier, rows in frames.items():
        ssims = [r["ssim"] for r in rows if r["ssim"] is not None]
        expected[tier] = {
            "frames": len(rows),
            "psnr_min": min(r["psnr_db"] for r in rows),
            "psnr_median": statistics.median(r["psnr_db"] for r in rows),
            "ssim_min": min(ssims),
            "ssim_mean": statistics.fmean(ssims),
            "max_abs_diff": max(r["max_abs_diff"] for r in rows),
            "mean_abs_diff": statistics.fmean(r["mean_abs_diff"] for r in rows),
            # an instance whose broken frames were recoded to meet the gate passed it
            "gate_failures": len(
                {r["source_sop_uid"] for r in rows if r["gate"] and r["gate_action"] != "fallback"}
            ),
            "psnr_range_min": min(r["psnr_db_range"] for r in rows),
            "ssim_range_min": min(r["ssim_range"] for r in rows if r["ssim_range"] is not None),
        }
    return expected


def same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative, +inf equal to +inf."""
    if isinstance(a, float) or isinstance(b, float):
        if math.isinf(a) or math.isinf(b):
            return bool(a == b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def assert_views_match_disk(catalogue: Catalogue, landing: Path, out: Path, broken: Path) -> None:
    savings = {row.pop("tier"): row for row in view(catalogue, "savings_by_tier")}
    expected = expected_savings(landing, out, broken)
    assert set(savings) == set(expected)
    for tier, want in expected.items():
        got = savings[tier]
        assert {k: got[k] for k in want} == want, tier
        assert same(got["ratio"], want["original_bytes"] / want["compressed_bytes"])
    quality = {row.pop("tier"): row for row in view(catalogue, "quality_by_tier")}
    wanted_quality = expected_quality(out)
    assert set(quality) == set(wanted_quality)
    for tier, want in wanted_quality.items():
        for column, value in want.items():
            assert same(quality[tier][column], value), (tier, column, quality[tier][column], value)
    by_study = view(catalogue, "savings_by_study")
    for tier in expected:
        assert (
            sum(r["compressed_bytes"] for r in by_study if r["tier"] == tier)
            == (expected[tier]["compressed_bytes"])
        )
        assert (
            sum(r["original_bytes"] for r in by_study if r["tier"] == tier)
            == (expected[tier]["original_bytes"])
        )
    assert {r["modality"] for r in by_study} == {"CT"}


def frame(index: int, psnr: float, *, ssim: float = 0.99, diff: float = 1.0) -> dict[str, Any]:
    """Per-frame metrics as ``dcmtier.work.gating.measure`` writes them."""
    return {
        "frame": index,
        "mse": 0.0 if math.isinf(psnr) else 1.0,
        "psnr_db": psnr,
        "psnr_peak": 4095.0,
        "ssim": ssim,
        "pixel_match_pct": 100.0 if math.isinf(psnr) else 50.0,
        "max_abs_diff": diff,
        "mean_abs_diff": diff / 2,
        "unit": "HU",
        "gate": None,
    }


def synthetic_result(
    study: Any, tier: str, psnrs_per_instance: Sequence[Sequence[float]]
) -> StudyTierResult:
    """A result whose instances carry the given PSNRs, frame by frame (no file is written)."""
    from dcmtier.records import TierResult

    results = []
    for path, psnrs in zip(study.files, psnrs_per_instance, strict=False):
        sop = study.sop_uids[path]
        results.append(
            TierResult(
                source=str(path), tier=tier, status="ok", output=f"/nowhere/{tier}/{sop}.dcm",
                study_instance_uid=study.uid, series_instance_uid="1.2.3",
                sop_instance_uid_in=sop, sop_instance_uid_out=sop, frames=len(psnrs),
                pixel_bytes_in=100, pixel_bytes_out=10, pixel_ratio=10.0, file_bytes_in=200,
                file_bytes_out=110, file_ratio=200 / 110,
                frame_metrics=[frame(i, p) for i, p in enumerate(psnrs)],
            )
        )  # fmt: skip
    return StudyTierResult(
        study_uid=study.uid, tier=tier, status="ok", run_id="synthetic",
        instances=len(results), counts={"ok": len(results)}, results=results,
    )  # fmt: skip


# Frames per instance -> the median the view must give: even count, odd count, +inf in the middle.
MEDIAN_CASES = {
    "j2k-r5": ([[30.0, 40.0], [50.0, math.inf]], 45.0),
    "j2k-r10": ([[20.0], [10.0], [30.0]], 20.0),
    "j2k-lossless": ([[math.inf], [math.inf], [30.0]], math.inf),
    "htj2k-lossless": ([[math.inf, math.inf]], math.inf),  # even: a mean of two infinities
}


def record_synthetic(catalogue: Catalogue, landing: Path) -> None:
    """One generated study; each MEDIAN_CASES tier recorded with its made-up frames."""
    from dcmtier.tiers import get_tier

    write_ct_series(landing, slices=3, rows=16, columns=16, seed=3)
    (study,), _ = discover([landing])
    catalogue.record_study(study)
    for tier, (psnrs, _median) in MEDIAN_CASES.items():
        job = catalogue.start_job(study.uid, get_tier(tier), JobContext.cli("synthetic"), {})
        catalogue.finish_job(job, synthetic_result(study, tier, psnrs))


def assert_medians(catalogue: Catalogue) -> None:
    quality = {row["tier"]: row for row in view(catalogue, "quality_by_tier")}
    for tier, (psnrs, median) in MEDIAN_CASES.items():
        assert quality[tier]["psnr_median"] == median, tier
        assert quality[tier]["psnr_min"] == min(p for frames in psnrs for p in frames)
        assert quality[tier]["frames"] == sum(len(frames) for frames in psnrs)


def schema_names(url: str) -> tuple[set[str], set[str]]:
    """The tables and the views in the database at ``url``."""
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return set(found.get_table_names()), set(found.get_view_names())
    finally:
        engine.dispose()


def encodings(catalogue: Catalogue, name: str) -> dict[str, set[tuple[str | None, int | None]]]:
    """Tier -> the (strategy, layer) pairs of its rows in ``derived_instances`` or ``lineage``."""
    found: dict[str, set[tuple[str | None, int | None]]] = defaultdict(set)
    for row in view(catalogue, name):
        found[row["tier"]].add((row["strategy"], row["layer"]))
    return dict(found)


def assert_lineage_names_strategy_and_layer(catalogue: Catalogue, landing: Path, out: Path) -> None:
    """A layered run, then a per_tier run of the same tiers that replaces its rows."""
    run_all(landing, out, catalogue, run_id="layered", tiers=LAYERED_TIERS, policy=KEEP)
    layered = {tier: {pair} for tier, pair in LAYERED_ENCODING.items()}
    assert encodings(catalogue, "derived_instances") == layered
    assert encodings(catalogue, "lineage") == layered
    assert len(view(catalogue, "lineage")) == 5 * len(LAYERED_TIERS)  # the broken slice: none
    run_all(
        landing,
        out,
        catalogue,
        run_id="per-tier",
        tiers=LAYERED_TIERS,
        strategy="per_tier",
        policy=KEEP,
    )
    per_tier = {tier: {("per_tier", None)} for tier in LAYERED_TIERS}
    assert encodings(catalogue, "derived_instances") == per_tier
    assert encodings(catalogue, "lineage") == per_tier
    assert {r["run_id"] for r in view(catalogue, "lineage")} == {"per-tier"}


def assert_backfill_survives_down_and_up(url: str, landing: Path, out: Path) -> None:
    """Rows recorded at head lose the columns in 0003 and get them back from job parameters.

    The synthetic study's jobs name no strategy (as attempts made before the layered strategy
    did not): recorded ``per_tier`` at head, NULL after the backfill.
    """
    catalogue = Catalogue.connect(url)
    try:
        run_all(landing, out, catalogue, tiers=LAYERED_TIERS, policy=KEEP)
        processed = {(r["derived_sop_uid"], r["tier"]) for r in view(catalogue, "lineage")}
        record_synthetic(catalogue, out / "synthetic")
        before = {(r["derived_sop_uid"], r["tier"]): r for r in view(catalogue, "lineage")}
        catalogue.engine.dispose()
        Catalogue.downgrade(url, "0003")
        assert not {"strategy", "layer"} & set(view(catalogue, "lineage")[0])
        catalogue.engine.dispose()
        Catalogue.upgrade(url)
        after = {(r["derived_sop_uid"], r["tier"]): r for r in view(catalogue, "lineage")}
    finally:
        catalogue.close()
    assert len(processed) == 5 * len(LAYERED_TIERS) and after.keys() == before.keys()
    for (uid, tier), row in after.items():
        was = before[uid, tier]
        ours = (uid, tier) in processed
        made = LAYERED_ENCODING[tier] if ours else ("per_tier", None)
        backfilled = made if ours else (None, None)
        assert (was["strategy"], was["layer"]) == made, (tier, uid)
        assert (row["strategy"], row["layer"]) == backfilled, (tier, uid)
        assert {**row, "strategy": None, "layer": None} == {**was, "strategy": None, "layer": None}
