"""Modality and pixel-kind rules refuse with the rule that refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcmtier.codec.policy import PixelKind, Policy
from dcmtier.errors import ConfigError, PolicyRefused
from dcmtier.tiers import TIERS, get_tier

GREY = PixelKind(bits_allocated=16, photometric="MONOCHROME2")


def test_mammography_is_lossless_only_by_default() -> None:
    policy = Policy()
    policy.check(get_tier("j2k-lossless"), modality="MG", kind=GREY)
    with pytest.raises(PolicyRefused) as refused:
        policy.check(get_tier("j2k-r5"), modality="MG", kind=GREY)
    assert refused.value.rule == "modality:MG:lossless-only"


def test_other_modalities_take_every_tier_by_default() -> None:
    Policy().check(get_tier("j2k-r1000"), modality="CT", kind=GREY)


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        (PixelKind(1, "MONOCHROME2"), "pixel:1-bit"),
        (PixelKind(8, "PALETTE COLOR"), "pixel:palette"),
    ],
    ids=["segmentation", "palette"],
)
def test_lossy_tiers_are_refused_for_binary_and_palette_pixels(kind: PixelKind, rule: str) -> None:
    Policy().check(get_tier("j2k-lossless"), modality="SEG", kind=kind)
    with pytest.raises(PolicyRefused) as refused:
        Policy().check(get_tier("jls-near2"), modality="SEG", kind=kind)
    assert refused.value.rule == rule


def test_a_policy_file_sets_a_maximum_lossy_ratio(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"cr": {"max_lossy_ratio": 20}, "MG": {"lossless_only": True}}))
    policy = Policy.from_file(path)
    policy.check(get_tier("j2k-r20"), modality="CR", kind=GREY)
    with pytest.raises(PolicyRefused, match="up to 20:1") as refused:
        policy.check(get_tier("j2k-r30"), modality="CR", kind=GREY)
    assert refused.value.rule == "modality:CR:max-ratio:20"


def test_a_malformed_policy_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"CR": {"max_ratio": 20}}))
    with pytest.raises(ConfigError, match=str(path)):
        Policy.from_file(path)


def test_mammography_takes_jpeg_xl_lossless_and_jpeg_recompression_but_not_its_rates() -> None:
    policy = Policy()
    policy.check(get_tier("jxl-lossless"), modality="MG", kind=GREY)
    policy.check(get_tier("jxl-jpeg"), modality="MG", kind=GREY)
    with pytest.raises(PolicyRefused) as refused:
        policy.check(get_tier("jxl-r20"), modality="MG", kind=GREY)
    assert refused.value.rule == "modality:MG:lossless-only"


def test_on_gate_failure_is_fallback_unless_a_tier_or_band_says_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(
        json.dumps({"CR": {"max_lossy_ratio": 20},
                    "on_gate_failure": {"thumbnail": "keep", "j2k-r20": "reject"}})
    )  # fmt: skip
    policy = Policy.from_file(path)
    assert policy.max_ratio("cr") == 20 and policy.max_ratio("CT") is None
    actions = policy.on_gate_failure
    assert actions.for_tier(TIERS["j2k-r20"]) == "reject"  # the tier, before its band
    assert actions.for_tier(TIERS["j2k-r10"]) == "fallback"  # review: the default
    assert actions.for_tier(TIERS["j2k-r100"]) == "keep"  # thumbnail band
    assert Policy().on_gate_failure.for_tier(TIERS["j2k-r20"]) == "fallback"
    assert policy.with_gate_action("keep").on_gate_failure.for_tier(TIERS["j2k-r20"]) == "keep"


@pytest.mark.parametrize(
    "raw",
    [{"on_gate_failure": "drop"}, {"on_gate_failure": {"j2k-r21": "keep"}},
     {"on_gate_failure": ["keep"]}],
    ids=["unknown-action", "unknown-tier", "not-an-object"],
)  # fmt: skip
def test_a_bad_on_gate_failure_is_refused_naming_the_file(tmp_path: Path, raw: object) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"policy\.json: not a valid policy: on_gate_failure"):
        Policy.from_file(path)
