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
    base |= {"max_abs_diff": 10.0, "mean_abs_diff": 1.0, "pixel_match_pct": 50.0}
    base |= values
    return FrameMetrics(frame=0, psnr_peak=4095.0, unit="HU", **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("gate", "metrics", "expected"),
    [
        (Gate(max_abs_diff=120), _metrics(max_abs_diff=130), "max |diff| 130 HU > 120 HU"),
        (Gate(max_abs_diff=120), _metrics(max_abs_diff=120), None),
        (Gate(min_psnr_db=45), _metrics(psnr_db=44.96), "PSNR 45.0 dB < 45 dB"),
        (Gate(min_psnr_db=45), _metrics(psnr_db=math.inf), None),
        (Gate(min_ssim=0.98), _metrics(ssim=0.97), "SSIM 0.9700 < 0.98"),
        (Gate(min_ssim=0.98), _metrics(ssim=None), None),
        (
            Gate(max_abs_diff=5, min_psnr_db=80, min_ssim=0.999),
            _metrics(),
            "max |diff| 10 HU > 5 HU; PSNR 70.0 dB < 80 dB",
        ),
        (Gate(), _metrics(max_abs_diff=4000, psnr_db=3, ssim=0.0), None),
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
