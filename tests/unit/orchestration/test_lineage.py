"""OpenLineage datasets from a compress result: names by UID and tier, the gate as assertions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.serde import Serde

from dcmtier.measure.store import write_partition
from dcmtier.orchestration.events import asset_extra, namespace
from dcmtier.orchestration.lineage import FACET_KEY, task_lineage

STUDY, SERIES = "1.2.3", "1.2.3.4"


def _rows(tier: str, *, max_abs_diff: float, psnr: float, ssim: float) -> list[dict[str, Any]]:
    from datetime import UTC, datetime

    from dcmtier.measure.store import QUALITY_SCHEMA

    row: dict[str, Any] = {f.name: None for f in QUALITY_SCHEMA}
    row |= {
        "study_uid": STUDY, "series_uid": SERIES, "source_sop_uid": "1.2.3.4.5",
        "derived_sop_uid": "2.25.1", "frame": 0, "tier": tier, "codec": "j2k",
        "transfer_syntax": "1.2.840.10008.1.2.4.91", "strategy": "per_tier", "target_ratio": 20.0,
        "mse": 4.0, "psnr_db": psnr, "psnr_peak": 4095.0, "ssim": ssim,
        "pixel_match_pct": 10.0, "max_abs_diff": max_abs_diff, "mean_abs_diff": 1.0, "unit": "HU",
        "psnr_db_range": psnr, "ssim_range": ssim, "data_range": 4095.0,
        "encode_ms": 1.0, "decode_ms": 1.0,
        "pixel_bytes_in": 8192, "pixel_bytes_out": 400, "pixel_ratio": 20.48,
        "file_bytes_in": 9000, "file_bytes_out": 1200, "file_ratio": 7.5, "run_id": "r",
        "software": "{}", "computed_at": datetime(2024, 1, 1, tzinfo=UTC), "fell_back": False,
    }  # fmt: skip
    return [row]


def _result(tmp_path: Path, tier: str, **metrics: float) -> dict[str, Any]:
    partition = write_partition(tmp_path / "quality", tier=tier, study_uid=STUDY,
                                rows=_rows(tier, **metrics))  # fmt: skip
    return {
        "study_uid": STUDY, "tier": tier, "status": "ok", "instances": 1,
        "pixel_bytes_in": 8192, "pixel_bytes_out": 400, "file_bytes_in": 9000,
        "file_bytes_out": 1200, "quality_partition": str(partition),
        "package": str(tmp_path / "packages" / STUDY / f"{tier}.zip"), "package_bytes": 1500,
        "package_sha256": "ab" * 32,
    }  # fmt: skip


def _event_json(datasets: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(Serde.to_json(d)) for d in datasets]


def test_a_compress_result_becomes_one_input_and_its_series_partition_and_package(
    tmp_path: Path,
) -> None:
    params = {"landing": "s3://archive/landing", "output": str(tmp_path)}
    found = task_lineage(
        "compress", _result(tmp_path, "j2k-r20", max_abs_diff=60, psnr=50, ssim=0.99), params
    )
    assert found is not None
    inputs, outputs = (_event_json(d) for d in found)
    assert inputs == [
        {
            "namespace": "s3://archive/landing",
            "name": f"studies/{STUDY}",
            "facets": {},
            "inputFacets": {},
        }
    ]
    assert [o["name"] for o in outputs] == [
        f"derived/j2k-r20/{STUDY}/{SERIES}", f"quality/tier=j2k-r20/study={STUDY}",
        f"packages/{STUDY}/j2k-r20.zip",
    ]  # fmt: skip
    assert {o["namespace"] for o in outputs} == {tmp_path.as_uri()}
    facet = outputs[1]["facets"][FACET_KEY]
    assert facet["achieved_ratio"] == pytest.approx(20.48) and facet["psnr_min_db"] == 50
    assert facet["_schemaURL"].endswith("DcmtierCompressionFacet.json")


@pytest.mark.parametrize(
    ("metrics", "broken"),
    [({"max_abs_diff": 60, "psnr": 50, "ssim": 0.99}, set()),
     ({"max_abs_diff": 200, "psnr": 50, "ssim": 0.99}, {"max_abs_diff"}),
     ({"max_abs_diff": 60, "psnr": 35, "ssim": 0.95}, {"psnr_db_range", "ssim_range"})],
    ids=["within", "over-hu", "under-psnr-ssim"],
)  # fmt: skip
def test_the_review_gate_is_asserted_with_the_worst_value_measured(
    tmp_path: Path, metrics: dict[str, float], broken: set[str]
) -> None:
    params = {"landing": "/data/landing", "output": str(tmp_path)}
    found = task_lineage("compress", _result(tmp_path, "j2k-r20", **metrics), params)
    assert found is not None
    (partition,) = [o for o in _event_json(found[1]) if o["name"].startswith("quality/")]
    assertions = partition["facets"]["dataQualityAssertions"]["assertions"]
    assert {a["column"] for a in assertions if not a["success"]} == broken
    assert next(a for a in assertions if a["column"] == "max_abs_diff")["expected"] == "150"


def test_other_tasks_and_missing_params_report_nothing() -> None:
    assert task_lineage("summary", {"x": 1}, {"landing": "/l", "output": "/o"}) is None
    assert task_lineage("compress", {"study_uid": "1"}, {}) is None


def test_namespaces_are_uris_and_asset_extras_name_study_tier_and_package(tmp_path: Path) -> None:
    assert namespace("s3://bucket/prefix/") == "s3://bucket/prefix"
    assert namespace(str(tmp_path)) == tmp_path.as_uri()
    extra = asset_extra(_result(tmp_path, "j2k-r20", max_abs_diff=1, psnr=60, ssim=1))
    assert extra["package_uri"] == (tmp_path / "packages" / STUDY / "j2k-r20.zip").as_uri()
    assert (extra["study_uid"], extra["tier"], extra["ratio"]) == (STUDY, "j2k-r20", 20.48)
    json.dumps(extra)  # an asset event's extra must be JSON


def test_a_large_unit_s_compress_task_reports_the_same_lineage(tmp_path: Path) -> None:
    params = {"landing": "s3://archive/landing", "output": str(tmp_path)}
    result = _result(tmp_path, "j2k-r20", max_abs_diff=60, psnr=50, ssim=0.99)
    large = task_lineage("compress_large", result, params)
    assert large is not None
    assert [_event_json(d) for d in large] == [
        _event_json(d) for d in task_lineage("compress", result, params) or ([], [])
    ]
    assert len(large[1]) == 3
