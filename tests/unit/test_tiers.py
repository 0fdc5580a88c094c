"""The tier table is the contract users read: names, codecs, ratios and syntaxes."""

from __future__ import annotations

import pytest

from dcmtier.errors import ConfigError
from dcmtier.tiers import (
    DEFAULT_TIERS,
    HTJ2K,
    J2K,
    JLS,
    JXL,
    SSIM_RANGE,
    TIERS,
    Use,
    get_tier,
    resolve_tiers,
)


def test_every_named_tier_exists_with_its_codec() -> None:
    j2k_rates = [3, 5, 10, 15, 20, 30, 50, 100, 200, 300, 500, 1000]
    expected = {
        "j2k-lossless",
        *(f"j2k-r{n}" for n in j2k_rates),
        "htj2k-lossless",
        *(f"htj2k-r{n}" for n in (10, 20, 50, 100)),
        "jls-lossless",
        "jls-near2",
        "jxl-lossless",
        "jxl-jpeg",
        "jxl-r20",
        "jxl-r50",
        "j2k-maxerr20",
        "j2k-maxerr150",
        "j2k-ssim0.98",
        *(f"jls-maxerr{n}" for n in (5, 20, 150)),
        "maxerr20",
        "maxerr150",
        "best-lossless",
    }
    assert set(TIERS) == expected
    assert ("j2k-lossless", *(f"j2k-r{n}" for n in j2k_rates)) == DEFAULT_TIERS


@pytest.mark.parametrize(
    ("name", "syntax", "lossless"),
    [
        ("j2k-lossless", "1.2.840.10008.1.2.4.90", True),
        ("j2k-r20", "1.2.840.10008.1.2.4.91", False),
        ("htj2k-lossless", "1.2.840.10008.1.2.4.201", True),
        ("htj2k-r50", "1.2.840.10008.1.2.4.203", False),
        ("jls-lossless", "1.2.840.10008.1.2.4.80", True),
        ("jls-near2", "1.2.840.10008.1.2.4.81", False),
        ("jxl-lossless", "1.2.840.10008.1.2.4.110", True),
        ("jxl-jpeg", "1.2.840.10008.1.2.4.111", True),
        ("jxl-r20", "1.2.840.10008.1.2.4.112", False),
    ],
)
def test_tier_transfer_syntax_matches_its_losslessness(
    name: str, syntax: str, lossless: bool
) -> None:
    tier = get_tier(name)
    assert tier.transfer_syntax == syntax
    assert tier.lossless is lossless


@pytest.mark.parametrize(
    ("name", "use"),
    [
        ("j2k-lossless", Use.DIAGNOSIS),
        ("j2k-r5", Use.DIAGNOSIS),
        ("j2k-r10", Use.REVIEW),
        ("j2k-r20", Use.REVIEW),
        ("j2k-r30", Use.PREVIEW),
        ("j2k-r100", Use.THUMBNAIL),
        ("j2k-r200", Use.THUMBNAIL),
        ("j2k-r300", Use.EXTREME),
        ("j2k-r1000", Use.EXTREME),
    ],
)
def test_usage_bands_follow_the_reference_survey(name: str, use: Use) -> None:
    assert get_tier(name).use is use


def test_unknown_tier_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known tiers: j2k-lossless"):
        resolve_tiers(["j2k-r20", "j2k-r7"])


def test_resolve_keeps_table_order_and_drops_duplicates() -> None:
    names = [t.name for t in resolve_tiers(["j2k-r20", "j2k-lossless", "j2k-r20"])]
    assert names == ["j2k-lossless", "j2k-r20"]
    assert [t.name for t in resolve_tiers(None)] == list(DEFAULT_TIERS)


def test_jpeg_xl_effort_is_a_tier_parameter_and_leaves_other_tiers_derived_uids_alone() -> None:
    lossless = get_tier("jxl-lossless")
    assert lossless.effort == 3
    assert lossless.parameters()["effort"] == 3
    assert get_tier("jxl-r50").parameters()["effort"] == 7
    assert get_tier("jxl-jpeg").effort is None
    assert "effort" not in get_tier("j2k-r20").parameters()
    assert get_tier("jxl-r20").codec.lossy_method == "ISO_18181_1"


def test_a_quality_targeted_tier_is_lossy_without_a_rate_and_names_its_bound() -> None:
    tier = TIERS["j2k-maxerr20"]
    assert not tier.lossless and tier.target_ratio is None
    assert tier.transfer_syntax == "1.2.840.10008.1.2.4.91"
    assert tier.parameters()["bound"] == {"max_abs_diff": 20.0, "min_ssim": None}
    assert "bound" not in TIERS["j2k-r20"].parameters()  # rate tiers' derived UIDs unchanged
    assert TIERS["j2k-ssim0.98"].bound is not None
    assert TIERS["j2k-ssim0.98"].bound.describe() == "SSIM >= 0.98 (L = the frame's range)"
    assert TIERS["j2k-ssim0.98"].parameters()["bound"] == {
        "max_abs_diff": None, "min_ssim": 0.98, "ssim_range": SSIM_RANGE,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("name", "bound", "use"),
    [("jls-maxerr5", 5.0, Use.DIAGNOSIS), ("jls-maxerr20", 20.0, Use.DIAGNOSIS),
     ("jls-maxerr150", 150.0, Use.REVIEW)],
)  # fmt: skip
def test_jls_bound_tiers_are_near_lossless_jpeg_ls_with_their_bound(
    name: str, bound: float, use: Use
) -> None:
    tier = get_tier(name)
    assert tier.codec is JLS and not tier.chooses and not tier.lossless
    assert tier.bound is not None and tier.bound.max_abs_diff == bound
    assert tier.transfer_syntax == "1.2.840.10008.1.2.4.81"
    assert tier.use is use


def test_choosing_tiers_list_their_candidates_fastest_decoder_first() -> None:
    assert get_tier("maxerr20").candidates == (HTJ2K, JLS, JXL, J2K)
    assert get_tier("maxerr150").candidates == (HTJ2K, JLS, JXL, J2K)
    best = get_tier("best-lossless")
    assert best.candidates == (HTJ2K, JLS, JXL, J2K) and best.lossless and best.chooses


def test_a_chosen_tier_keeps_name_and_bound_and_takes_the_codec_s_syntax() -> None:
    chosen = get_tier("maxerr20").chosen(JLS, near=20)
    assert (chosen.name, chosen.near, chosen.chooses) == ("maxerr20", 20, False)
    assert chosen.transfer_syntax == "1.2.840.10008.1.2.4.81"
    assert "NEAR=20" in chosen.describe_target() and "20" in chosen.describe_target()
    assert get_tier("best-lossless").chosen(JXL).transfer_syntax == "1.2.840.10008.1.2.4.110"
