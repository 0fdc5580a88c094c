"""The routing tables: what each dicom-image-loader release decodes, and with which codec."""

from __future__ import annotations

from dcmtier.tiers import TIERS
from dcmtier.viewer.routing import CHARLS, LIBJXL, OPENJPEG, OPENJPH, VIEWERS, codec_for


def test_ohifs_release_has_no_jpeg_xl_and_the_latest_has_it() -> None:
    for syntax in ("1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112"):
        assert codec_for("cornerstone-5.6.8", syntax) is None
        assert codec_for("cornerstone-5.14.0", syntax) == LIBJXL


def test_every_tier_but_jpeg_xl_routes_to_its_codec_in_both_releases() -> None:
    expected = {"j2k": OPENJPEG, "htj2k": OPENJPH, "jls": CHARLS, "jxl": LIBJXL, "jxl-jpeg": LIBJXL}
    # a codec-choosing tier's outputs carry the syntax of the candidate each instance got
    made = [
        c
        for t in TIERS.values()
        for c in ([t.chosen(c) for c in t.candidates] if t.chooses else [t])
    ]
    assert len(made) > len(TIERS)
    for tier in made:
        for viewer in VIEWERS:
            got = codec_for(viewer, tier.transfer_syntax)
            if tier.codec.label.startswith("jxl") and viewer == "cornerstone-5.6.8":
                assert got is None, tier.name
            else:
                assert got == expected[tier.codec.label], (tier.name, viewer)
