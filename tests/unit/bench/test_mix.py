"""The hospital mix of ``bench scale --dag --mix hospital`` and its figures."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmtier.bench.mix import lay_out_mix, projection, share_figures


def test_ten_studies_are_seven_radiographs_two_ct_and_one_mr(tmp_path: Path) -> None:
    uids = lay_out_mix(tmp_path, 10, date(2023, 3, 1), 2, seed=1)
    assert len(set(uids)) == 10
    found: Counter[str] = Counter()
    images: dict[str, list[int]] = {}
    for folder in sorted(tmp_path.iterdir()):
        files = sorted(folder.glob("*.dcm"))
        ds = dcmread(files[0], stop_before_pixels=True)
        found[str(ds.Modality)] += 1
        images.setdefault(str(ds.Modality), []).append(len(files))
        assert ds.StudyDate in ("20230301", "20230302")
    assert found == {"DX": 7, "CT": 2, "MR": 1}
    assert set(images["DX"]) == {1, 2} and images["CT"] == [20, 20] and images["MR"] == [12]


def test_the_share_is_the_slot_time_not_spent_in_dcmtiers_work() -> None:
    row = {"wall_s": 100.0, "slots": 4, "other_busy_s": 0.0, "busy_s": 300.0}
    share = share_figures(row, {"attempts_s": 250.0, "encode_s": 30.0, "units_s": 360.0})
    assert share["slot_s"] == 400.0 and share["outside_task_bodies_s"] == 100.0
    assert share["orchestration_share"] == pytest.approx(0.1)  # outside the units' code
    assert share["orchestration_share_attempts"] == pytest.approx(0.3)  # outside attempts


def _row(tis: int, growth: int, unit_seconds: float) -> dict[str, object]:
    return {"task_instances": tis, "runs": 1, "unit_seconds": unit_seconds,
            "metadata": {"before_bytes": 1000, "after_bytes": 1000 + growth},
            "pairs_expected": 130, "tiers": ["t"] * 13,
            "share": {"attempts_s": 65.0}}  # fmt: skip


def test_two_rows_give_the_cost_of_a_task_instance_and_of_a_run() -> None:
    # 144 instances: 144 x 9 kB + 50 kB; 18 instances: 18 x 9 kB + 50 kB
    rows = [_row(144, 144 * 9000 + 50_000, 0), _row(18, 18 * 9000 + 50_000, 120)]
    found = projection(rows)
    assert found is not None
    assert found["metadata_per_task_instance_bytes"] == 9000
    assert found["metadata_per_run_bytes"] == 50_000
    # 0.5 s a study x tier: 1,000 studies are 500 s, 5 units of 120 s (rounded up)
    assert found["units_per_run"] == 5 and found["runs"] == 1000
    assert found["task_instances"] == 1000 * (6 + 5 * 14)  # 6 unmapped tasks a run
    assert projection(rows[:1]) is None


def test_the_projection_counts_a_runs_other_task_instances_as_measured() -> None:
    rows = [_row(144, 144 * 9000 + 50_000, 0), _row(18, 18 * 9000 + 50_000, 120)]
    rows[1]["per_task"] = {"discover": {"success": 1}, "units": {"success": 1},
                           "tiers": {"success": 1}, "summary": {"success": 1},
                           "publish": {"success": 1}, "compress_large": {"skipped": 1},
                           "encode": {"success": 1}, "compress": {"success": 13}}  # fmt: skip
    found = projection(rows)
    assert found is not None and found["fixed_task_instances_per_run"] == 6
    assert found["task_instances"] == 1000 * (6 + 5 * 14)
