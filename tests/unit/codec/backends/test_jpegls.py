"""JPEG-LS through CharLS: the traps of near-lossless coding (issue #27).

Signed values must not be coded as their two's-complement pattern at NEAR > 0 (an error across
the -1 / 0 seam came back as 65535); the codestream's precision must be Bits Stored (a 12-bit
frame at 4095 decoded to 4115 at 16 bits); the NEAR a decoder applies is the codestream's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pydicom import Dataset

from dcmtier.codec.backends import FrameSpec, jpegls
from dcmtier.errors import CodecError, PolicyRefused
from dcmtier.tiers import get_tier

NEAR20 = replace(get_tier("jls-near2"), near=20)


def _spec(bits: int, signed: bool, size: int = 48) -> FrameSpec:
    return FrameSpec(size, size, 1, 16, bits, signed, "MONOCHROME2")


def _noisy(signed: bool, size: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(0 if signed else 1000, 15, (size, size)).round()
    return values.astype(np.int16 if signed else np.uint16)


@pytest.mark.parametrize("pad", [-2000, -32768], ids=["pad-2000", "pad-32768"])
def test_signed_near_lossless_stays_within_near_across_the_sign_seam(pad: int) -> None:
    frame = _noisy(signed=True)  # noise around 0: values on both sides of the -1 / 0 seam
    frame[:8] = pad
    spec = _spec(16, signed=True)
    encoded = jpegls.encode(frame, spec, NEAR20)
    decoded = jpegls.decode(encoded.data, spec)
    assert decoded.dtype == np.int16
    assert int(np.abs(decoded.astype(np.int32) - frame).max()) <= 20
    assert encoded.offset == 32768  # offset binary; the output's intercept compensates


def test_two_s_complement_near_lossless_would_break_the_bound() -> None:
    """What the offset avoids: the same frame coded as its bit pattern goes wrong."""
    import jpeg_ls

    frame = _noisy(signed=True)
    frame[:8] = -32768
    data = jpeg_ls.encode_buffer(frame.view(np.uint16).tobytes(), 48, 48, 1, 16, lossy_error=20)
    back = np.asarray(jpeg_ls.decode(np.frombuffer(bytes(data), np.uint8))).view(np.int16)
    assert int(np.abs(back.astype(np.int32) - frame).max()) > 20


def test_a_12_bit_frame_at_4095_decodes_within_12_bits() -> None:
    frame = _noisy(signed=False)
    frame[:6] = 4095
    spec = _spec(12, signed=False)
    encoded = jpegls.encode(frame, spec, NEAR20)
    decoded = jpegls.decode(encoded.data, spec)
    assert int(decoded.max()) <= 4095
    assert int(np.abs(decoded.astype(np.int32) - frame).max()) <= 20
    assert encoded.bits_stored == 12 and encoded.offset == 0


@pytest.mark.parametrize("near", [0, 3, 20, 150])
def test_the_near_is_read_back_from_the_codestream(near: int) -> None:
    spec = _spec(12, signed=False)
    encoded = jpegls.encode(_noisy(signed=False), spec, replace(NEAR20, near=near))
    assert jpegls.codestream_near(encoded.data) == near
    assert encoded.params["near"] == near


def test_signed_lossless_keeps_the_two_s_complement_coding() -> None:
    frame = _noisy(signed=True)
    spec = _spec(12, signed=True)
    encoded = jpegls.encode(frame, spec, get_tier("jls-lossless"))
    assert encoded.offset == 0
    assert np.array_equal(jpegls.decode(encoded.data, spec), frame)


def test_a_near_beyond_the_precision_is_a_codec_error() -> None:
    spec = FrameSpec(16, 16, 1, 8, 8, False, "MONOCHROME2")
    with pytest.raises(CodecError, match="NEAR 200"):
        jpegls.encode(np.zeros((16, 16), np.uint8), spec, replace(NEAR20, near=200))
    assert jpegls.max_near(8) == 127 and jpegls.max_near(12) == 255


def test_signed_near_lossless_without_a_rescale_is_refused_with_its_rule() -> None:
    ds = Dataset()
    with pytest.raises(PolicyRefused) as refused:
        jpegls.BACKEND.check(ds, _spec(16, signed=True), NEAR20)
    assert refused.value.rule == "codec:jls:signed-needs-rescale"
    jpegls.BACKEND.check(ds, _spec(16, signed=True), get_tier("jls-lossless"))  # lossless: fine
    ds.RescaleIntercept = 0
    jpegls.BACKEND.check(ds, _spec(16, signed=True), NEAR20)
