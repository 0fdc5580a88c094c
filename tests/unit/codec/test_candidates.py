"""The codecs a codec-choosing tier may choose from: the policy file's ``candidates`` and
``viewers``, validated in one line naming the file and the bad value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcmtier.codec.candidates import CHOOSING, Candidates
from dcmtier.codec.policy import Policy
from dcmtier.errors import ConfigError
from dcmtier.tiers import TIERS, VIEWER_FAMILIES, get_tier
from dcmtier.viewer.routing import VIEWERS


def _policy(tmp_path: Path, raw: object) -> Policy:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(raw))
    return Policy.from_file(path)


def _labels(policy: Policy, tier: str) -> list[str]:
    return [codec.label for codec in policy.candidates.for_tier(get_tier(tier))]


def test_without_candidates_every_choosing_tier_keeps_all_its_codecs(tmp_path: Path) -> None:
    for policy in (Policy(), _policy(tmp_path, {"CR": {"max_lossy_ratio": 20}})):
        for name in CHOOSING:
            assert policy.candidates.for_tier(TIERS[name]) == TIERS[name].candidates
            assert policy.candidates.restricted(TIERS[name]) is None
        assert not policy.candidates.restricts


def test_a_list_restricts_every_choosing_tier_in_the_tiers_own_order(tmp_path: Path) -> None:
    policy = _policy(tmp_path, {"candidates": ["j2k", "jls", "htj2k"]})
    for name in CHOOSING:  # the tier's order (fastest decoder first), not the file's
        assert _labels(policy, name) == ["htj2k", "jls", "j2k"]
        assert policy.candidates.restricted(TIERS[name]) == ["htj2k", "jls", "j2k"]
    assert policy.with_gate_action("keep").candidates == policy.candidates


def test_a_tiers_own_list_comes_before_the_default(tmp_path: Path) -> None:
    raw = {"candidates": {"default": ["htj2k", "jls", "j2k"], "best-lossless": ["jls", "jxl"]}}
    policy = _policy(tmp_path, raw)
    assert _labels(policy, "maxerr20") == ["htj2k", "jls", "j2k"]
    assert _labels(policy, "best-lossless") == ["jls", "jxl"]
    only_one = _policy(tmp_path, {"candidates": {"maxerr150": ["jls"]}})
    assert _labels(only_one, "maxerr150") == ["jls"]
    assert _labels(only_one, "maxerr20") == ["htj2k", "jls", "jxl", "j2k"]


def test_ohifs_pinned_viewer_leaves_out_jpeg_xl(tmp_path: Path) -> None:
    policy = _policy(tmp_path, {"viewers": "cornerstone-5.6.8"})
    for name in CHOOSING:
        assert "jxl" not in _labels(policy, name)
    newest = _policy(tmp_path, {"viewers": ["cornerstone-5.14.0"]})
    assert not newest.candidates.restricts
    both = _policy(tmp_path, {"viewers": ["cornerstone-5.14.0", "cornerstone-5.6.8"]})
    assert _labels(both, "best-lossless") == ["htj2k", "jls", "j2k"]  # what all of them decode


@pytest.mark.parametrize("viewer", sorted(VIEWERS))
def test_each_viewers_families_are_those_whose_every_syntax_its_loader_routes(viewer: str) -> None:
    """The preset agrees with the loader releases' routing tables of ``viewer-check``."""
    routed = VIEWERS[viewer]
    decoded = {
        codec.label
        for codec in TIERS["best-lossless"].candidates
        if codec.lossless_syntax in routed and codec.lossy_syntax in routed
    }
    assert set(VIEWER_FAMILIES[viewer]) == decoded
    assert set(VIEWER_FAMILIES) == set(VIEWERS)


@pytest.mark.parametrize(
    ("raw", "bad"),
    [
        ({"candidates": ["htj2k", "jpegxl"]}, "'jpegxl' is not a codec family"),
        ({"candidates": {"j2k-r20": ["j2k"]}}, "'j2k-r20' is not a codec-choosing tier"),
        ({"candidates": "j2k"}, "candidates 'default': a list of codec families, not 'j2k'"),
        ({"viewers": "ohif"}, "viewers: 'ohif' is not a known viewer"),
        ({"candidates": ["jxl"], "viewers": "cornerstone-5.6.8"}, "leave tier maxerr20 no"),
        ({"candidates": {"best-lossless": []}}, "leave tier best-lossless no codec"),
    ],
    ids=["unknown-family", "not-choosing", "not-a-list", "unknown-viewer", "none-left", "empty"],
)
def test_a_bad_candidates_value_is_one_line_naming_the_file_and_the_value(
    tmp_path: Path, raw: object, bad: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        _policy(tmp_path, raw)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'policy.json'}: not a valid policy: ")
    assert bad in message and "\n" not in message


def test_the_dag_params_override_the_policy_only_when_they_restrict() -> None:
    policy = Policy()
    assert policy.with_candidates(Candidates.parse(None, None)) is policy
    assert policy.with_candidates(None) is policy
    restricted = policy.with_candidates(Candidates.parse(["htj2k", "jls", "j2k"]))
    assert _labels(restricted, "maxerr20") == ["htj2k", "jls", "j2k"]
    assert restricted.modality_rules == policy.modality_rules
