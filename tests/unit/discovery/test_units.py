"""Packing a run's studies into work units, and the cost model they are sized by."""

from __future__ import annotations

import itertools
import random

import pytest

from dcmtier.discovery.units import (
    MIN_HISTORY,
    Attempt,
    CostModel,
    StudySize,
    fit,
    pack,
    unit_id,
)

MODEL = CostModel(study_s=1.0, byte_s=1e-6, instance_s=0.0)  # 1 s + 1 s a MB


def _sizes(mb: list[float]) -> list[StudySize]:
    return [StudySize(f"1.2.{n}", 1, int(m * 1e6)) for n, m in enumerate(mb)]


def test_a_unit_closes_before_the_study_that_would_take_it_past_the_target() -> None:
    units = pack(_sizes([1, 1, 1, 1, 1]), 5.0, MODEL)  # 2 s a study
    assert [len(u.studies) for u in units] == [2, 2, 1]
    assert all(u.estimate_s <= 5.0 for u in units)
    assert [u.id for u in units] == ["u0000", "u0001", "u0002"]


def test_a_study_over_the_target_is_a_unit_of_its_own_and_never_split() -> None:
    sizes = _sizes([0, 0, 50, 0])  # the third: 51 s against a 10 s target
    units = pack(sizes, 10.0, MODEL)
    assert [u.studies for u in units] == [("1.2.0", "1.2.1"), ("1.2.2",), ("1.2.3",)]
    assert units[1].estimate_s == pytest.approx(51.0)
    flat = [uid for u in units for uid in u.studies]
    assert flat == [s.uid for s in sizes]  # every study once, in plan order


def test_zero_seconds_keeps_one_study_a_unit() -> None:
    units = pack(_sizes([0.1] * 4), 0, MODEL)
    assert [u.studies for u in units] == [("1.2.0",), ("1.2.1",), ("1.2.2",), ("1.2.3",)]


def test_packing_is_deterministic_and_keeps_every_study_once() -> None:
    rng = random.Random(7)
    sizes = _sizes([rng.uniform(0, 30) for _ in range(500)])
    first, second = pack(sizes, 120.0, MODEL), pack(list(sizes), 120.0, MODEL)
    assert first == second
    assert [uid for u in first for uid in u.studies] == [s.uid for s in sizes]
    for unit in first:
        assert unit.estimate_s <= 120.0 or len(unit.studies) == 1
    # a unit and the next study together would have passed the target
    for unit, after in itertools.pairwise(first):
        nxt = next(s for s in sizes if s.uid == after.studies[0])
        assert unit.estimate_s + MODEL.seconds(nxt) > 120.0


def test_no_studies_no_units_and_xcom_holds_the_count_only() -> None:
    assert pack([], 120.0, MODEL) == []
    (unit,) = pack(_sizes([1, 1]), 120.0, MODEL)
    assert unit.for_xcom() == {"id": "u0000", "studies": 2}
    assert unit_id(42) == "u0042"


def test_the_fit_recovers_the_recorded_costs_and_overestimates_the_fixed_part() -> None:
    rng = random.Random(3)
    attempts = []
    for _ in range(200):
        n, size = rng.randint(1, 400), rng.randint(10_000, 200_000_000)
        seconds = 0.8 + 3e-8 * size + 0.01 * n + rng.uniform(-0.05, 0.05)
        attempts.append(Attempt(n, size, seconds))
    model = fit(attempts, CostModel(study_s=0.1, byte_s=1e-9, instance_s=0.01))
    assert model.fitted_from == 200 and model.instance_s == 0.01  # held
    assert model.byte_s == pytest.approx(3e-8, rel=0.05)
    assert 0.8 <= model.study_s <= 0.9  # the median plus its deviation: above the true 0.8


def test_too_little_history_keeps_the_defaults() -> None:
    default = CostModel()
    few = [Attempt(1, 1000 * n, 0.3) for n in range(1, MIN_HISTORY)]
    assert fit(few, default) is default


def test_alike_studies_show_no_per_byte_cost_only_a_fixed_one() -> None:
    """Studies of one size cannot tell a per-byte cost from a fixed one: the default slope
    stays, the fixed part takes the rest."""
    default = CostModel(study_s=0.5, byte_s=1e-7, instance_s=0.0)
    alike = [Attempt(3, 300_000 + n, 4.0 + 0.001 * (n % 7)) for n in range(MIN_HISTORY + 5)]
    model = fit(alike, default)
    assert model.byte_s == default.byte_s
    assert model.study_s == pytest.approx(4.0 - 0.03, abs=0.01)  # 4 s less 0.03 s of bytes


def test_the_fixed_part_is_never_below_the_default_nor_the_slope_negative() -> None:
    attempts = [Attempt(1, n * 1_000_000, 1.0 / n) for n in range(1, 60)]  # bigger is faster
    model = fit(attempts, CostModel(study_s=0.5, byte_s=1e-7))
    assert model.study_s >= 0.5 and model.byte_s == 1e-7


def test_studies_with_a_file_above_the_threshold_are_packed_apart_into_large_units() -> None:
    """A large study never shares a unit with a small one (a task's pool is per task): the
    large ones are packed among themselves by the same rule, flagged, numbered after."""
    sizes = [
        StudySize("1.2.0", 1, 1_000_000, largest=1_000_000),
        StudySize("1.2.1", 2, 9_000_000, largest=8_000_000),  # large
        StudySize("1.2.2", 1, 1_000_000, largest=1_000_000),
        StudySize("1.2.3", 1, 5_000_001, largest=5_000_001),  # large: just above
        StudySize("1.2.4", 3, 6_000_000, largest=5_000_000),  # not large: not above
        StudySize("1.2.5", 1, 60_000_000, largest=60_000_000),  # large, over the target alone
    ]
    units = pack(sizes, 20.0, MODEL, large_bytes=5_000_000)
    assert [(u.id, u.studies, u.large) for u in units] == [
        ("u0000", ("1.2.0", "1.2.2", "1.2.4"), False),
        ("u0001", ("1.2.1", "1.2.3"), True),  # 10 s + 6 s: under the 20 s target together
        ("u0002", ("1.2.5",), True),
    ]
    assert [u.for_xcom() for u in units][1:] == [
        {"id": "u0001", "studies": 2, "large": True},
        {"id": "u0002", "studies": 1, "large": True},
    ]
    assert units[0].for_xcom() == {"id": "u0000", "studies": 3}  # as without a threshold
    assert sorted(uid for u in units for uid in u.studies) == [s.uid for s in sizes]


def test_without_a_threshold_no_unit_is_large() -> None:
    sizes = [StudySize(f"1.2.{n}", 1, 10**9, largest=10**9) for n in range(3)]
    assert pack(sizes, 0, MODEL) == pack(sizes, 0, MODEL, large_bytes=0)
    assert not any(u.large for u in pack(sizes, 0, MODEL))
    one_each = pack(sizes, 0, MODEL, large_bytes=1)  # every study large: one a unit still
    assert [(u.id, u.studies, u.large) for u in one_each] == [
        (f"u000{n}", (f"1.2.{n}",), True) for n in range(3)
    ]
