"""Signed stored values in offset binary, the one conversion JPEG-LS and JPEG XL share."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import Dataset

from dcmtier.codec.backends import FrameSpec, backend
from dcmtier.codec.backends.offsetbinary import (
    from_offset_binary,
    half_range,
    to_offset_binary,
)
from dcmtier.errors import PolicyRefused


def _spec(bits_allocated: int, bits_stored: int) -> FrameSpec:
    return FrameSpec(4, 4, 1, bits_allocated, bits_stored, signed=True, photometric="MONOCHROME2")


@pytest.mark.parametrize(("allocated", "stored"), [(16, 16), (16, 12), (8, 8), (8, 6)])
def test_every_signed_value_maps_in_order_onto_the_unsigned_range_and_back(
    allocated: int, stored: int
) -> None:
    spec = _spec(allocated, stored)
    low, high = -half_range(stored), half_range(stored) - 1
    values = np.arange(low, high + 1).astype(spec.dtype)
    coded = to_offset_binary(values, spec, half_range(stored))
    assert coded.dtype.kind == "u" and coded.dtype.itemsize == spec.dtype.itemsize
    assert coded[0] == 0 and coded[-1] == 2**stored - 1
    assert np.all(np.diff(coded.astype(np.int64)) == 1)  # -1 and 0 stay neighbours
    back = from_offset_binary(coded, spec, half_range(stored))
    assert back.dtype == spec.dtype
    np.testing.assert_array_equal(back, values)


@pytest.mark.parametrize(
    ("label", "tier_check", "words", "rule"),
    [
        ("jls", "check_lossy", "offset for near-lossless coding and",
         "codec:jls:signed-needs-rescale"),
        ("jxl", "check_source", "offset and", "codec:jxl:signed-needs-rescale"),
    ],
)  # fmt: skip
def test_both_codecs_refuse_a_signed_source_the_intercept_cannot_compensate(
    label: str, tier_check: str, words: str, rule: str
) -> None:
    check = getattr(backend(label), tier_check)
    spec = _spec(16, 12)
    lut = Dataset()
    lut.RescaleIntercept = -1024
    lut.ModalityLUTSequence = []
    for dataset, why in ((Dataset(), "no Rescale Intercept"), (lut, "ModalityLUTSequence")):
        with pytest.raises(PolicyRefused, match=why) as refused:
            check(dataset, spec)
        assert refused.value.rule == rule
        assert f"signed stored values are {words} the Rescale Intercept" in str(refused.value)
    plain = Dataset()
    plain.RescaleIntercept = -1024
    check(plain, spec)  # a plain rescale compensates
    unsigned = FrameSpec(4, 4, 1, 16, 12, signed=False, photometric="MONOCHROME2")
    check(Dataset(), unsigned)  # unsigned sources are never offset
