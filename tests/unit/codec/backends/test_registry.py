"""The codec registry: each label gives a typed ``Backend`` that refuses what its codec cannot
code before anything is encoded; an unknown label names the known ones."""

from __future__ import annotations

import pytest
from pydicom import Dataset

from dcmtier.codec.backends import Backend, FrameSpec, available, backend
from dcmtier.errors import ConfigError, PolicyRefused
from dcmtier.tiers import get_tier

LABELS = ["j2k", "htj2k", "jls", "jxl", "jxl-jpeg"]


def _spec(*, side: int = 64, bits_allocated: int = 16, bits_stored: int = 12) -> FrameSpec:
    return FrameSpec(side, side, 1, bits_allocated, bits_stored, False, "MONOCHROME2")


@pytest.mark.parametrize("label", LABELS)
def test_every_label_gives_a_backend_named_by_it(label: str) -> None:
    found = backend(label)
    assert isinstance(found, Backend) and found.label == label
    assert available()[label] is found.is_available()


def test_an_unknown_codec_is_refused_with_the_list_of_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown codec 'webp'; known codecs: j2k, htj2k, jls"):
        backend("webp")


@pytest.mark.parametrize(
    ("tier", "spec", "rule"),
    [
        ("jls-lossless", _spec(side=4), "codec:jls:min-size"),
        ("j2k-r20", _spec(side=16), "codec:j2k:min-size"),
        ("htj2k-lossless", _spec(bits_allocated=1, bits_stored=1), "codec:htj2k:1-bit"),
    ],
    ids=["jpeg-ls-under-8-pixels", "lossy-j2k-under-32-pixels", "htj2k-1-bit"],
)
def test_a_source_the_codec_cannot_code_is_refused_by_its_backend(
    tier: str, spec: FrameSpec, rule: str
) -> None:
    codec = get_tier(tier).codec.label
    with pytest.raises(PolicyRefused) as refused:
        backend(codec).check(Dataset(), spec, get_tier(tier))
    assert refused.value.rule == rule


def test_one_bit_data_is_taken_by_jpeg_2000_and_a_large_enough_frame_by_every_codec() -> None:
    backend("j2k").check(
        Dataset(), _spec(bits_allocated=1, bits_stored=1), get_tier("j2k-lossless")
    )
    for name in ("j2k-lossless", "htj2k-lossless", "jls-lossless", "jxl-lossless"):
        backend(get_tier(name).codec.label).check(Dataset(), _spec(), get_tier(name))
