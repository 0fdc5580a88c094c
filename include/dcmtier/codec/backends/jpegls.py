"""JPEG-LS lossless and near-lossless through CharLS (pyjpegls, as pydicom uses it).

CharLS codes unsigned samples of ``bits_stored`` precision. Signed data are coded as their
two's-complement bit pattern within Bits Stored and sign-extended on decode, as DICOM
readers do.
"""

from __future__ import annotations

import numpy as np

from dcmtier.codec.backends import Backend, Encoded, FrameSpec
from dcmtier.errors import CodecError
from dcmtier.tiers import Tier

MIN_SIDE = 8  # pyjpegls under-sizes its output buffer for tinier images
_PIXEL_INTERLEAVED = 2  # Planar Configuration 0


def is_available() -> bool:
    try:
        import jpeg_ls  # noqa: F401
    except ImportError:
        return False
    return True


def encode(frame: np.ndarray, spec: FrameSpec, tier: Tier) -> Encoded:
    """Encode with NEAR = ``tier.near`` (0 is lossless)."""
    import jpeg_ls

    unsigned = frame.view(spec.dtype.str.replace("i", "u"))
    if spec.signed:
        unsigned = unsigned & np.asarray((1 << spec.bits_stored) - 1, unsigned.dtype)
    try:
        data = jpeg_ls.encode_buffer(
            np.ascontiguousarray(unsigned).astype(unsigned.dtype.newbyteorder("<")).tobytes(),
            spec.rows,
            spec.columns,
            spec.samples,
            spec.bits_stored,
            lossy_error=tier.near,
            interleave_mode=_PIXEL_INTERLEAVED if spec.samples > 1 else None,
        )
    except Exception as exc:
        raise CodecError(f"CharLS could not encode the frame: {exc}") from exc
    return Encoded(bytes(data), spec.photometric, spec.bits_stored, params={"near": tier.near})


def decode(data: bytes, spec: FrameSpec) -> np.ndarray:
    import jpeg_ls

    try:
        out = np.asarray(jpeg_ls.decode(np.frombuffer(data, np.uint8)))
    except Exception as exc:
        raise CodecError(f"CharLS could not decode the codestream: {exc}") from exc
    if spec.signed:
        shift = 8 * out.dtype.itemsize - spec.bits_stored
        signed = out.astype(spec.dtype.str.replace("u", "i"))
        return ((signed << shift) >> shift).astype(spec.dtype)
    return out.astype(spec.dtype, copy=False)


BACKEND = Backend("jls", is_available, encode, decode, min_side=MIN_SIDE, min_lossy_side=MIN_SIDE)
