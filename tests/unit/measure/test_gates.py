"""Quality gates: each broken rule named on one line; the bands loosen in order."""

from __future__ import annotations

import itertools
import math

import pytest

from dcmtier.measure.gates import DEFAULT_GATES, LOSSLESS_GATE, Gate
from dcmtier.measure.metrics import FrameMetrics
from dcmtier.tiers import Use


def _metrics(**values: float | None) -> FrameMetrics:
    base: dict[str, float | None] = {"mse": 1.0, "psnr_db": 70.0, "ssim": 0.9999}
    base |= {"psnr_db_range": 70.0, "ssim_range": 0.9999, "data_range": 4095.0}
    base |= {"max_abs_diff": 10.0, "mean_abs_diff": 1.0, "pixel_match_pct": 50.0}
    base |= values
    return FrameMetrics(frame=0, psnr_peak=4095.0, unit="HU", **base)  # type: ignore[arg-type]


_RANGE = " (against the frame's range 4095 HU)"


@pytest.mark.parametrize(
    ("gate", "metrics", "expected"),
    [
        (Gate(max_abs_diff=120), _metrics(max_abs_diff=130), "max |diff| 130 HU > 120 HU"),
        (Gate(max_abs_diff=120), _metrics(max_abs_diff=120), None),
        (Gate(min_psnr_db=45), _metrics(psnr_db_range=44.96), f"PSNR 45.0 dB < 45 dB{_RANGE}"),
        (Gate(min_psnr_db=45), _metrics(psnr_db_range=math.inf), None),
        (Gate(min_ssim=0.98), _metrics(ssim_range=0.97), f"SSIM 0.9700 < 0.98{_RANGE}"),
        (Gate(min_ssim=0.98), _metrics(ssim_range=None), None),
        (
            Gate(max_abs_diff=5, min_psnr_db=80, min_ssim=0.999),
            _metrics(),
            f"max |diff| 10 HU > 5 HU; PSNR 70.0 dB < 80 dB{_RANGE}",
        ),
        (Gate(), _metrics(max_abs_diff=4000, psnr_db_range=3, ssim_range=0.0), None),
        (LOSSLESS_GATE, _metrics(max_abs_diff=1), "max |diff| 1 HU > 0 HU"),
    ],
    ids=["max-over", "max-at-limit", "psnr-under", "psnr-inf", "ssim-under", "ssim-undefined",
         "two-rules", "no-limits", "lossless"],
)  # fmt: skip
def test_gate_names_each_violated_rule_on_one_line(
    gate: Gate, metrics: FrameMetrics, expected: str | None
) -> None:
    assert gate.check(metrics) == expected


def test_default_gates_cover_every_usage_band_and_loosen_with_it() -> None:
    assert list(DEFAULT_GATES) == [use.value for use in Use]
    gates = list(DEFAULT_GATES.values())
    for tighter, looser in itertools.pairwise(gates):
        assert (looser.min_psnr_db or 0) < (tighter.min_psnr_db or 0)
        assert (looser.min_ssim or 0) < (tighter.min_ssim or 0)
        assert (looser.max_abs_diff or math.inf) > (tighter.max_abs_diff or math.inf)


def test_psnr_and_ssim_limits_judge_the_range_relative_values_not_the_nominal_ones() -> None:
    gate = Gate(min_psnr_db=45, min_ssim=0.98)
    saturated = _metrics(psnr_db=87.0, ssim=1.0, psnr_db_range=40.0, ssim_range=0.95)
    assert gate.check(saturated) == (
        "PSNR 40.0 dB < 45 dB; SSIM 0.9500 < 0.98 (against the frame's range 4095 HU)"
    )
    full = _metrics(psnr_db=44.0, ssim=0.97, psnr_db_range=46.0, ssim_range=0.99)
    assert gate.check(full) is None
