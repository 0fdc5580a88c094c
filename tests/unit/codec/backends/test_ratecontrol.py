"""Rate control: every rate tier lands within +-5 % of its target on CT-like slices."""

from __future__ import annotations

import numpy as np
import pytest

from dcmtier.codec.backends import FrameSpec, backend
from dcmtier.codec.backends.ratecontrol import search_step, within
from dcmtier.sample import ct_phantom
from dcmtier.tiers import TIERS

RATE_TIERS = [name for name, t in TIERS.items() if t.target_ratio is not None]
SLICES = {"chest": 0.25, "abdomen": 0.7}


@pytest.fixture(scope="module")
def slices() -> dict[str, tuple[np.ndarray, FrameSpec]]:
    out = {}
    for name, z in SLICES.items():
        hu = ct_phantom(512, 512, z=z, seed=3)
        out[name] = (hu, FrameSpec(512, 512, 1, 16, 12, True, "MONOCHROME2"))
    return out


@pytest.mark.parametrize("slice_name", list(SLICES))
@pytest.mark.parametrize("tier_name", RATE_TIERS)
def test_achieved_pixel_ratio_is_within_5_percent_where_reachable(
    slices: dict[str, tuple[np.ndarray, FrameSpec]], tier_name: str, slice_name: str
) -> None:
    tier = TIERS[tier_name]
    frame, spec = slices[slice_name]
    codec = backend(tier.codec.label)
    lossless = spec.pixel_bytes / len(
        codec.encode(frame, spec, TIERS[f"{tier.codec.label}-lossless"]).data
    )
    encoded = codec.encode(frame, spec, tier)
    achieved = spec.pixel_bytes / len(encoded.data)
    assert tier.target_ratio is not None
    if lossless < tier.target_ratio * 0.95:
        assert within(achieved, tier.target_ratio), f"{achieved:.2f} for {tier.target_ratio}"
    else:  # the image compresses losslessly beyond the target: smaller is allowed
        assert achieved >= tier.target_ratio * 0.95
    if tier.codec.label == "htj2k":
        assert encoded.encodes <= 5, "the step search should need few encodes"


def test_step_search_converges_on_a_power_law() -> None:
    calls = []

    def fake_encode(step: float) -> bytes:
        calls.append(step)
        return b"x" * int(1_000_000 / (1000 * step) ** 0.7)

    data, _step, encodes = search_step(fake_encode, 1_000_000, 40.0, first_step=1e-4)
    assert within(1_000_000 / len(data), 40.0)
    assert encodes == len(calls) <= 5


def test_step_search_returns_the_closest_when_the_target_is_out_of_reach() -> None:
    def saturating(step: float) -> bytes:
        return b"x" * 5000  # the ratio never changes: 200

    data, _, encodes = search_step(saturating, 1_000_000, 20.0, first_step=1e-3, max_encodes=4)
    assert len(data) == 5000
    assert encodes == 4
