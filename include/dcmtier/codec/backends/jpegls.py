"""JPEG-LS lossless and near-lossless through CharLS (pyjpegls, as pydicom uses it).

CharLS codes unsigned samples of ``bits_stored`` precision (passed as the codestream's
precision, so a 12-bit frame keeps MAXVAL 4095: coding at the container's 16 bits let values at
4095 decode to 4115 at NEAR 20). Signed data:

- lossless (NEAR 0): coded as their two's-complement bit pattern within Bits Stored and
  sign-extended on decode, as DICOM readers do;
- near-lossless (NEAR > 0): coded in offset binary (`offsetbinary`, as JPEG XL codes them).
  In the two's-complement view -1 and 0 are 2^BitsStored - 1 apart, and a near-lossless error
  across that seam came back as 65535 (measured, CT with -32768 padding). Signed sources whose
  modality values are not a plain rescale are refused for near-lossless.

The decoder tells the two apart by the NEAR the codestream declares (`codestream_near`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dcmtier.codec.backends import Backend, Encoded, FrameSpec
from dcmtier.codec.backends.offsetbinary import (
    check_rescalable,
    from_offset_binary,
    half_range,
    to_offset_binary,
)
from dcmtier.errors import CodecError
from dcmtier.tiers import Tier

if TYPE_CHECKING:
    from pydicom import Dataset

MIN_SIDE = 8  # pyjpegls under-sizes its output buffer for tinier images
MAX_NEAR = 255  # ISO/IEC 14495-1: NEAR <= min(255, MAXVAL / 2)
_PIXEL_INTERLEAVED = 2  # Planar Configuration 0
_SOS = b"\xff\xda"


def is_available() -> bool:
    try:
        import jpeg_ls  # noqa: F401
    except ImportError:
        return False
    return True


def max_near(bits_stored: int) -> int:
    """The largest NEAR a codestream of this precision may declare."""
    return min(MAX_NEAR, ((1 << bits_stored) - 1) // 2)


def offset(spec: FrameSpec, near: int) -> int:
    """What near-lossless coding adds to each stored value: 2^(BitsStored - 1) when signed."""
    return half_range(spec.bits_stored) if spec.signed and near > 0 else 0


def check_lossy(dataset: Dataset, spec: FrameSpec) -> None:
    """Refuse near-lossless for signed sources whose modality values an offset would change."""
    check_rescalable(
        dataset, spec, codec="JPEG-LS", coded=" for near-lossless coding",
        rule="codec:jls:signed-needs-rescale",
    )  # fmt: skip


def encode(frame: np.ndarray, spec: FrameSpec, tier: Tier) -> Encoded:
    """Encode with NEAR = ``tier.near`` (0 is lossless)."""
    import jpeg_ls

    near = tier.near
    if not 0 <= near <= max_near(spec.bits_stored):
        raise CodecError(
            f"JPEG-LS NEAR {near} is outside 0..{max_near(spec.bits_stored)} for "
            f"{spec.bits_stored} bits stored"
        )
    shift = offset(spec, near)
    unsigned = _unsigned(frame, spec, shift)
    try:
        data = bytes(
            jpeg_ls.encode_buffer(
                np.ascontiguousarray(unsigned).astype(unsigned.dtype.newbyteorder("<")).tobytes(),
                spec.rows,
                spec.columns,
                spec.samples,
                spec.bits_stored,
                lossy_error=near,
                interleave_mode=_PIXEL_INTERLEAVED if spec.samples > 1 else None,
            )
        )
    except Exception as exc:
        raise CodecError(f"CharLS could not encode the frame: {exc}") from exc
    written = codestream_near(data)
    if written != near:  # what a decoder will apply is what the codestream says
        raise CodecError(f"CharLS wrote NEAR {written} for a requested NEAR {near}")
    params = {"near": near}
    return Encoded(data, spec.photometric, spec.bits_stored, params=params, offset=shift)


def decode(data: bytes, spec: FrameSpec) -> np.ndarray:
    """Stored values of one frame: signed data sign-extended, or back from offset binary."""
    import jpeg_ls

    try:
        out = np.asarray(jpeg_ls.decode(np.frombuffer(data, np.uint8)))
    except Exception as exc:
        raise CodecError(f"CharLS could not decode the codestream: {exc}") from exc
    if not spec.signed:
        return out.astype(spec.dtype, copy=False)
    shift = offset(spec, codestream_near(data))
    if shift:
        return from_offset_binary(out, spec, shift)
    width = 8 * out.dtype.itemsize - spec.bits_stored
    signed = out.astype(spec.dtype.str.replace("u", "i"))
    return ((signed << width) >> width).astype(spec.dtype)


def codestream_near(data: bytes) -> int:
    """The NEAR of the codestream's first scan (its Start of Scan segment).

    SOS: FFDA, length (2 bytes), Ns (1), Ns x (component id, table id), NEAR (1), ILV (1), ...
    """
    at = data.find(_SOS)
    if at < 0 or len(data) < at + 5:
        raise CodecError("JPEG-LS codestream without a Start of Scan marker")
    components = data[at + 4]
    where = at + 5 + 2 * components
    if len(data) <= where:
        raise CodecError("JPEG-LS codestream with a truncated Start of Scan")
    return data[where]


def _unsigned(frame: np.ndarray, spec: FrameSpec, shift: int) -> np.ndarray:
    if shift:
        return to_offset_binary(frame, spec, shift)
    unsigned = np.dtype(spec.dtype.str.replace("i", "u"))
    values = frame.view(unsigned)
    if spec.signed:
        values = values & np.asarray((1 << spec.bits_stored) - 1, unsigned)
    return values


BACKEND = Backend(
    "jls", is_available, encode, decode, min_side=MIN_SIDE, min_lossy_side=MIN_SIDE,
    check_lossy=check_lossy,
)  # fmt: skip
