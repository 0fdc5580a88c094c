"""The estimate's stratified sample and ratio estimator, on synthetic numbers."""

from __future__ import annotations

import random

import pytest

from dcmtier.discovery.forecast import (
    METADATA_BYTES_PER_TASK,
    RUN_TASKS,
    TASK_SLOT_S,
    dag_forecast,
)
from dcmtier.discovery.sampling import (
    StudyRecord,
    allocate,
    combine,
    draw,
    ratio_estimate,
    sample_size,
    size_class,
    strata,
)
from dcmtier.discovery.units import CostModel


def _archive(seed: int = 1) -> list[StudyRecord]:
    """500 DX one-image studies, 80 CT of 0.2-6 MB, 20 MR, and one lone PET study."""
    rng = random.Random(seed)
    out = [StudyRecord(f"1.2.{n}", "DX", 1, rng.randint(100_000, 200_000)) for n in range(500)]
    out += [StudyRecord(f"1.3.{n}", "CT", 40, rng.randint(200_000, 6_000_000)) for n in range(80)]
    out += [StudyRecord(f"1.4.{n}", "MR", 20, rng.randint(300_000, 900_000)) for n in range(20)]
    return [*out, StudyRecord("1.5.0", "PT", 100, 5_000_000)]


def test_size_classes_are_factors_of_four_from_256_kb() -> None:
    assert size_class(0) == size_class(262_143) == "<256kB"
    assert size_class(262_144) == "<1MB"
    assert size_class(4 * 1024**2 - 1) == "<4MB"
    assert size_class(10**12) == ">=1GB"


def test_the_sample_is_reproducible_and_every_stratum_is_in_it() -> None:
    archive = _archive()
    first = draw(archive, 60, seed=5)
    assert [s.uid for s in first] == [s.uid for s in draw(list(reversed(archive)), 60, seed=5)]
    assert {s.uid for s in first} != {s.uid for s in draw(archive, 60, seed=6)}
    assert len(first) == 60 and len({s.uid for s in first}) == 60
    groups = strata(archive)
    taken = strata(first)
    assert set(taken) == set(groups)  # every stratum represented
    for name, members in groups.items():
        assert len(taken[name]) >= min(2, len(members))
    assert len(taken["PT/<16MB"]) == 1  # a stratum of one is taken whole


def test_allocation_is_proportional_above_the_minimum_and_never_exceeds_a_stratum() -> None:
    take = allocate({"a": 1000, "b": 100, "c": 1, "d": 3}, 50)
    assert sum(take.values()) == 50
    assert take["c"] == 1 and take["d"] >= 2 and take["a"] > 10 * take["b"] / 2
    assert allocate({"a": 3, "b": 2}, 100) == {"a": 3, "b": 2}
    # by weight (the sample weighs strata by their bytes): 2 each, then 16.2 : 1.8, then a
    assert allocate({"a": 100, "b": 100}, 22, {"a": 9.0, "b": 1.0}) == {"a": 19, "b": 3}
    archive = _archive()
    taken = strata(draw(archive, 60, seed=0))
    # DX has 5x the studies of CT but a tenth of its bytes: CT gets the larger share
    ct = sum(len(v) for h, v in taken.items() if h.startswith("CT"))
    dx = sum(len(v) for h, v in taken.items() if h.startswith("DX"))
    assert ct > dx
    assert sample_size(300, None, 0.1) == 30 and sample_size(300, 500, None) == 300
    assert sample_size(5, None, 0.01) == 1


def test_a_constant_ratio_per_stratum_is_estimated_exactly_with_no_variance() -> None:
    archive = _archive()
    ratio = {"DX": 0.5, "CT": 0.3, "MR": 0.4, "PT": 0.25}
    truth = sum(ratio[s.modality] * s.bytes for s in archive)
    sample = draw(archive, 40, seed=1)
    parts = ratio_estimate(archive, {s.uid: ratio[s.modality] * s.bytes for s in sample})
    total = combine(parts.values())
    assert total.value == pytest.approx(truth)
    assert total.variance == pytest.approx(0.0, abs=1e-6)
    assert total.studies == len(archive) and total.sampled == 40
    assert total.source_bytes == sum(s.bytes for s in archive)


def test_the_whole_archive_as_sample_gives_the_truth_and_no_interval() -> None:
    archive = _archive()
    rng = random.Random(3)
    stored = {s.uid: s.bytes * rng.uniform(0.2, 0.6) for s in archive}
    total = combine(ratio_estimate(archive, stored).values())
    assert total.value == pytest.approx(sum(stored.values()))
    assert total.low == pytest.approx(total.high)


def test_the_95_percent_interval_covers_the_truth_about_95_times_in_100() -> None:
    archive = _archive()
    rng = random.Random(11)
    base = {"DX": 0.5, "CT": 0.3, "MR": 0.4, "PT": 0.25}
    stored = {s.uid: s.bytes * base[s.modality] * rng.lognormvariate(0, 0.25) for s in archive}
    truth = sum(stored.values())
    covered, errors = 0, []
    for seed in range(200):
        sample = draw(archive, 60, seed=seed)
        total = combine(ratio_estimate(archive, {s.uid: stored[s.uid] for s in sample}).values())
        covered += total.low <= truth <= total.high
        errors.append(total.value / truth - 1)
    assert 0.88 <= covered / 200 <= 0.99
    assert abs(sum(errors) / len(errors)) < 0.01  # nearly unbiased


def test_a_stratum_without_a_sampled_study_is_refused() -> None:
    archive = _archive()
    with pytest.raises(ValueError, match="no sampled study"):
        ratio_estimate(archive, {archive[0].uid: 1.0})


def test_the_dag_forecast_counts_runs_units_task_instances_and_metadata() -> None:
    archive = [StudyRecord(f"1.{n}", "DX", 1, 100_000) for n in range(2500)]
    model = CostModel(study_s=1.0, byte_s=0.0, instance_s=0.0)
    got = dag_forecast(archive, tiers=2, work_s=1000.0, slots=4, model=model, unit_seconds=100)
    # 3 runs (1000, 1000, 500 studies); 100 one-second studies a unit
    assert got.runs == 3 and got.units == 10 + 10 + 5
    assert got.task_instances == 3 * RUN_TASKS + 25 * (1 + 2)
    assert got.metadata_bytes == got.task_instances * METADATA_BYTES_PER_TASK
    assert got.wall_s == pytest.approx((1000.0 + got.task_instances * TASK_SLOT_S) / 4)
    one = dag_forecast(archive, tiers=2, work_s=1000.0, slots=4, model=model, unit_seconds=0)
    assert one.units == 2500  # one study a unit
