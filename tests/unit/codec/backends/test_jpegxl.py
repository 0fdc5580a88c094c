"""JPEG XL backends: lossless round trips, signed data in offset binary, the distance search,
and JPEG recompression that gives the JPEG bytes back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import generate_frames

from dcmtier.codec.backends import FrameSpec, backend
from dcmtier.codec.backends.jpegxl import quantise
from dcmtier.codec.backends.ratecontrol import within
from dcmtier.errors import PolicyRefused
from dcmtier.sample import ct_phantom
from dcmtier.tiers import JXL as JXL_CODEC
from dcmtier.tiers import JXL_NEAR_EFFORT, get_tier
from dcmtier.work.nearlossless import jxl_tier
from tests.support import reference_file

JXL = backend("jxl")
JXL_JPEG = backend("jxl-jpeg")
LOSSLESS = get_tier("jxl-lossless")


def _spec(frame: np.ndarray, bits: int, *, signed: bool = False) -> FrameSpec:
    samples = 3 if frame.ndim == 3 else 1
    return FrameSpec(
        rows=frame.shape[0],
        columns=frame.shape[1],
        samples=samples,
        bits_allocated=8 * frame.dtype.itemsize,
        bits_stored=bits,
        signed=signed,
        photometric="RGB" if samples == 3 else "MONOCHROME2",
    )


RNG = np.random.default_rng(19)
CASES = {
    "ct 12-bit unsigned": ((ct_phantom(64, 64).astype(np.int32) + 1024).astype(np.uint16), 12),
    "ct 12-bit signed": (ct_phantom(64, 64), 12),
    "16-bit unsigned full range": (RNG.integers(0, 65536, (32, 48)).astype(np.uint16), 16),
    "16-bit signed full range": (RNG.integers(-32768, 32768, (32, 48)).astype(np.int16), 16),
    "8-bit greyscale": (RNG.integers(0, 256, (40, 30)).astype(np.uint8), 8),
    "6-bit in 8": (RNG.integers(0, 64, (40, 30)).astype(np.uint8), 6),
    "8-bit rgb": (RNG.integers(0, 256, (24, 20, 3)).astype(np.uint8), 8),
    "16-bit rgb": (RNG.integers(0, 4096, (24, 20, 3)).astype(np.uint16), 12),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_lossless_frames_decode_to_the_same_stored_values(case: tuple[np.ndarray, int]) -> None:
    frame, bits = case
    spec = _spec(frame, bits, signed=frame.dtype.kind == "i")
    encoded = JXL.encode(frame, spec, LOSSLESS)
    assert encoded.bits_stored == bits  # the codestream declares exactly Bits Stored
    assert encoded.params["effort"] == LOSSLESS.effort
    decoded = JXL.decode(encoded.data, spec)
    assert decoded.dtype == frame.dtype
    np.testing.assert_array_equal(decoded, frame)


def test_signed_values_are_coded_in_offset_binary_so_the_codestream_is_unsigned() -> None:
    import imagecodecs

    frame = ct_phantom(64, 64)  # HU, -1024..2047 in 12 bits
    spec = _spec(frame, 12, signed=True)
    encoded = JXL.encode(frame, spec, LOSSLESS)
    assert encoded.offset == 2048
    raw = imagecodecs.jpegxl_decode(encoded.data)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw.astype(np.int32), frame.astype(np.int32) + 2048)


@pytest.mark.parametrize("name", ["jxl-r20", "jxl-r50"])
def test_a_rate_tier_searches_the_distance_that_gives_its_ratio(name: str) -> None:
    tier = get_tier(name)
    frame = (ct_phantom(128, 128, index=2).astype(np.int32) + 1024).astype(np.uint16)
    spec = _spec(frame, 12)
    encoded = JXL.encode(frame, spec, tier)
    assert tier.target_ratio is not None
    assert within(spec.pixel_bytes / len(encoded.data), tier.target_ratio)
    assert 0 < float(encoded.params["distance"]) <= 25  # type: ignore[arg-type]
    assert encoded.params["effort"] == tier.effort == 7
    decoded = JXL.decode(encoded.data, spec)
    assert decoded.shape == frame.shape
    assert 0 < np.abs(decoded.astype(np.int32) - frame).max() < 1000


@pytest.mark.parametrize("near", [1, 5, 20, 150])
@pytest.mark.parametrize(
    "case", [CASES["16-bit unsigned full range"], CASES["6-bit in 8"]], ids=["16-bit", "6-bit"]
)
def test_the_lattice_keeps_every_value_within_near_and_below_the_precision(
    case: tuple[np.ndarray, int], near: int
) -> None:
    values, bits = case
    values = values.copy()
    values.flat[:3] = (1 << bits) - 1  # the top: a lattice point above it is capped
    snapped = quantise(values, near, bits)
    assert snapped.dtype == values.dtype
    assert np.abs(snapped.astype(np.int64) - values).max() <= near
    assert snapped.max() <= (1 << bits) - 1 and snapped.min() == values.min()
    low, step = int(values.min()), 2 * near + 1
    off_lattice = (snapped.astype(np.int64) - low) % step != 0
    assert set(snapped[off_lattice].tolist()) <= {(1 << bits) - 1}


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_near_lossless_frames_decode_within_near_and_smaller_than_lossless(signed: bool) -> None:
    hu = ct_phantom(64, 64, noise_hu=15.0)
    frame = hu if signed else (hu.astype(np.int32) + 1024).astype(np.uint16)
    spec = _spec(frame, 12, signed=signed)
    near = jxl_tier(get_tier("maxerr20"), 20)
    assert (near.codec, near.near, near.effort) == (JXL_CODEC, 20, JXL_NEAR_EFFORT)
    encoded = JXL.encode(frame, spec, near)
    assert encoded.params == {"effort": JXL_NEAR_EFFORT, "near": 20}
    decoded = JXL.decode(encoded.data, spec)
    error = np.abs(decoded.astype(np.int32) - frame.astype(np.int32))
    assert 0 < error.max() <= 20
    assert len(encoded.data) < len(JXL.encode(frame, spec, LOSSLESS).data) / 2


def test_a_signed_source_without_a_rescale_is_refused_with_the_rule() -> None:
    ds = dcmread(reference_file("MR_small.dcm"))  # signed, no Rescale Intercept
    spec = _spec(np.zeros((64, 64), np.int16), 16, signed=True)
    with pytest.raises(PolicyRefused) as refused:
        JXL.check_source(ds, spec)
    assert refused.value.rule == "codec:jxl:signed-needs-rescale"
    ct = dcmread(reference_file("CT_small.dcm"))  # signed, with a rescale: accepted
    JXL.check_source(ct, spec)


def test_jpeg_recompression_gives_back_the_jpeg_bytes_and_is_smaller() -> None:
    ds = dcmread(reference_file("SC_rgb_jpeg_dcmtk.dcm"))
    jpeg = next(generate_frames(ds.PixelData, number_of_frames=1))
    spec = dataclasses.replace(_spec(np.zeros((100, 100, 3), np.uint8), 8), photometric="YBR_FULL")
    JXL_JPEG.check_source(ds, spec)
    encoded = JXL_JPEG.encode(jpeg, spec, get_tier("jxl-jpeg"))
    assert encoded.photometric == "YBR_FULL"  # the JPEG's, which the rebuilt bitstream keeps
    assert len(encoded.data) < len(jpeg)
    assert JXL_JPEG.decode(encoded.data, spec).tobytes() == jpeg


def test_jpeg_recompression_refuses_a_source_that_is_not_jpeg() -> None:
    ds = dcmread(reference_file("CT_small.dcm"))
    with pytest.raises(PolicyRefused) as refused:
        JXL_JPEG.check_source(ds, _spec(np.zeros((128, 128), np.int16), 16, signed=True))
    assert refused.value.rule == "codec:jxl-jpeg:jpeg-source-only"
    assert "1.2.840.10008.1.2.1" in str(refused.value)
