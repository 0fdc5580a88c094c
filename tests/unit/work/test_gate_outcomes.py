"""Issue #15 on a noisy CT (24 slices of 256x256, low-dose noise): a gate result is a quality
outcome handled by ``on_gate_failure``, and the quality-targeted tiers meet their bound.

One study, written once for the module; every output checked here is decoded again by GDCM
(``gdcmconv --raw``), independently of the OpenJPEG that wrote and searched it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as pads
import pytest
from pydicom import dcmread

from dcmtier.cli import main
from dcmtier.sample import write_ct_series
from tests.support import gdcm_frames

NOISE_HU = 50.0  # the thickest slices' extra noise (dcmtier.sample.ct_phantom)
BOUNDS = {"j2k-r20": 150.0, "j2k-r100": 1100.0, "j2k-maxerr20": 20.0}


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("noisy")
    write_ct_series(root / "landing", slices=24, rows=256, columns=256, noise_hu=NOISE_HU)
    return root


def _process(noisy: Path, out: str, tiers: list[str], *extra: str) -> tuple[int, Path]:
    target = noisy / out
    args = ["process", str(noisy / "landing"), "--out", str(target), "--jobs", "2", "--json"]
    code = main([*args, *(a for t in tiers for a in ("--tier", t)), *extra])
    return code, target


@pytest.fixture(scope="module")
def fallback(noisy: Path) -> Iterator[tuple[int, Path]]:
    yield _process(noisy, "fallback", list(BOUNDS))


@pytest.fixture(scope="module")
def kept(noisy: Path) -> Iterator[tuple[int, Path]]:
    rates = ["j2k-r3", "j2k-r5", "j2k-r10", "j2k-r20"]
    yield _process(noisy, "keep", rates, "--on-gate-failure", "keep")


def _rows(out: Path) -> list[dict[str, Any]]:
    table = pads.dataset(out / "quality", format="parquet", partitioning="hive").to_table()
    return list(table.to_pylist())


def _query(out: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(out / "catalogue.db") as conn:
        return conn.execute(sql).fetchall()


def _hu(path: Path) -> np.ndarray:
    ds = dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_r20_really_breaks_the_review_gate_on_this_ct(kept: tuple[int, Path]) -> None:
    code, out = kept
    assert code == 0  # kept, flagged gate failures are not failures
    r20 = [r for r in _rows(out) if r["tier"] == "j2k-r20"]
    assert len(r20) == 24 and all(r["gate_action"] == "keep" for r in r20)
    assert sum(r["max_abs_diff"] > 150 for r in r20) >= 6  # the 150 HU limit itself, not SSIM
    assert max(r["max_abs_diff"] for r in r20) > 180


def test_process_with_fallback_exits_0_and_nothing_fails(fallback: tuple[int, Path]) -> None:
    code, out = fallback
    assert code == 0
    jobs = _query(out, "SELECT tier, status, error FROM jobs")
    assert sorted(jobs) == sorted((t, "ok", None) for t in BOUNDS)
    assert _query(out, "SELECT count(*) FROM failures") == [(0,)]
    fell = {t: n for t, n in _query(out, "SELECT tier, fallback_frames FROM quality_by_tier")}
    assert fell["j2k-r20"] == 24 and fell["j2k-maxerr20"] == 0  # r20's frames all fell back
    rows = [r for r in _rows(out) if r["tier"] == "j2k-r20"]
    assert all(r["fell_back"] and r["gate_action"] == "fallback" and r["gate"] for r in rows)
    assert all(r["pixel_ratio"] < 20 for r in rows)  # the achieved ratio, recorded per frame


@pytest.mark.parametrize("tier", list(BOUNDS))
def test_every_frame_is_within_its_bound_decoded_by_gdcm(
    fallback: tuple[int, Path], noisy: Path, tier: str, tmp_path: Path
) -> None:
    _, out = fallback
    sources = {str(dcmread(p).SOPInstanceUID): p for p in (noisy / "landing").glob("*.dcm")}
    outputs = sorted((out / "derived" / tier).rglob("*.dcm"))
    assert len(outputs) == 24
    worst = 0.0
    for path in outputs:
        ds = dcmread(path)
        source = sources[str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)]
        (decoded,) = gdcm_frames(path, tmp_path)
        hu = decoded.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        worst = max(worst, float(np.abs(hu - _hu(source)).max()))
        assert ds.LossyImageCompression == "01"
    assert worst <= BOUNDS[tier]


def test_a_package_per_tier_and_savings_equal_the_bytes_stored(
    fallback: tuple[int, Path],
) -> None:
    _, out = fallback
    for tier in BOUNDS:
        (package,) = (out / "packages").rglob(f"{tier}.zip")
        stored = sum(p.stat().st_size for p in (out / "derived" / tier).rglob("*.dcm"))
        (saved,) = _query(
            out, f"SELECT compressed_bytes, instances FROM savings_by_tier WHERE tier = '{tier}'"
        )
        assert saved == (stored, 24), tier
        assert package.stat().st_size > 0


def test_maxerr20_labels_its_bound_and_achieved_ratio(fallback: tuple[int, Path]) -> None:
    _, out = fallback
    path = next((out / "derived" / "j2k-maxerr20").rglob("*.dcm"))
    ds = dcmread(path)
    assert "max |diff| <= 20 (modality units)" in ds.DerivationDescription
    pixel_ratio = ds.Rows * ds.Columns * 2 / len(ds.PixelData)  # about: one fragment, BOT
    assert float(ds.LossyImageCompressionRatio) == pytest.approx(pixel_ratio, rel=0.02)
    assert float(ds.LossyImageCompressionRatio) > 3.0


def test_maxerr20_stores_at_most_085_of_the_best_fixed_rate_meeting_20_hu(
    fallback: tuple[int, Path], kept: tuple[int, Path]
) -> None:
    fixed: dict[str, list[dict[str, Any]]] = {}
    for r in _rows(kept[1]):
        fixed.setdefault(r["tier"], []).append(r)
    meeting = {
        tier: sum(r["pixel_bytes_out"] for r in rows)
        for tier, rows in fixed.items()
        if tier in ("j2k-r3", "j2k-r5", "j2k-r10") and all(r["max_abs_diff"] <= 20 for r in rows)
    }
    assert meeting, "no fixed rate meets 20 HU on every frame: the comparison would be empty"
    ours = sum(r["pixel_bytes_out"] for r in _rows(fallback[1]) if r["tier"] == "j2k-maxerr20")
    assert ours <= 0.85 * min(meeting.values()), (ours, meeting)


def test_reject_keeps_nothing_counts_nothing_and_still_exits_0(noisy: Path) -> None:
    code, out = _process(noisy, "reject", ["j2k-r20"], "--on-gate-failure", "reject")
    assert code == 0
    assert not list((out / "derived").rglob("*.dcm"))
    assert not list((out / "packages").rglob("*.zip"))
    assert _query(out, "SELECT status FROM jobs") == [("rejected",)]
    assert _query(out, "SELECT count(*) FROM savings_by_tier") == [(0,)]
    assert _query(out, "SELECT status, count(*) FROM failures GROUP BY status") == [
        ("rejected", 24)
    ]
    rows = _rows(out)
    assert len(rows) == 24 and {r["gate_action"] for r in rows} == {"reject"}


def test_a_policy_file_sets_the_action_per_band(noisy: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"on_gate_failure": {"default": "reject", "review": "keep"}}))
    code, out = _process(noisy, "policy", ["j2k-r20"], "--policy", str(policy))
    assert code == 0
    assert {r["gate_action"] for r in _rows(out)} == {"keep"}
    (parameters,) = _query(out, "SELECT parameters FROM jobs")
    assert json.loads(parameters[0])["on_gate_failure"] == "keep"
