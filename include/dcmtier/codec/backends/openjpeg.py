"""JPEG 2000 Part 1 through OpenJPEG (pylibjpeg-openjpeg), with rate control.

OpenJPEG's ``compression_ratios`` are relative to the codestream precision (BitsStored);
dcmtier's tiers are relative to the stored bytes (BitsAllocated), so the nominal ratio is
converted, and corrected once or twice by measurement.
"""

from __future__ import annotations

import numpy as np

from dcmtier.codec.backends import Backend, Encoded, FrameSpec
from dcmtier.codec.backends.ratecontrol import within
from dcmtier.errors import CodecError
from dcmtier.tiers import Tier

MIN_LOSSY_SIDE = 32  # pylibjpeg-openjpeg always uses 6 DWT resolutions: 2**5 pixels a side
MAX_CORRECTIONS = 3
_GREYSCALE, _SRGB = 2, 1


def is_available() -> bool:
    try:
        import openjpeg  # noqa: F401
    except ImportError:
        return False
    return True


def encode(frame: np.ndarray, spec: FrameSpec, tier: Tier) -> Encoded:
    """Encode one frame reversibly (lossless tiers) or irreversibly at the tier's ratio."""
    colour = spec.samples == 3
    if tier.target_ratio is None:
        small = min(spec.rows, spec.columns) < MIN_LOSSY_SIDE
        data = _encode_small(frame, spec) if small else _encode(frame, spec, None)
        return Encoded(data, "YBR_RCT" if colour else spec.photometric, spec.bits_stored)
    target = tier.target_ratio
    nominal = max(1.0, target * spec.bits_stored / spec.bits_allocated)
    data = _encode(frame, spec, nominal)
    encodes = 1
    for _ in range(MAX_CORRECTIONS):
        achieved = spec.pixel_bytes / len(data)
        if within(achieved, target):
            break
        nominal = max(1.0, nominal * target / achieved)
        retry = _encode(frame, spec, nominal)
        encodes += 1
        if abs(spec.pixel_bytes / len(retry) - target) >= abs(achieved - target):
            break  # no closer: the image compresses beyond the target or the rate floor
        data = retry
    params = {"opj_ratio": round(nominal, 6)}
    return Encoded(
        data, "YBR_ICT" if colour else spec.photometric, spec.bits_stored, encodes, params
    )


def encode_within(frame: np.ndarray, spec: FrameSpec, max_bytes: int) -> bytes:
    """One irreversible encode of at most about ``max_bytes`` (OpenJPEG's achieved ratio is at
    least the nominal one): what a codec-choosing tier tries before searching (`work.choosing`)."""
    ratio = spec.pixel_bytes / max(max_bytes, 1) * spec.bits_stored / spec.bits_allocated
    return _encode(frame, spec, max(1.0, ratio))


def decode(data: bytes, spec: FrameSpec) -> np.ndarray:
    import openjpeg

    try:
        out = openjpeg.decode(data)
    except Exception as exc:  # the library raises bare RuntimeError on corrupt data
        raise CodecError(f"OpenJPEG could not decode the codestream: {exc}") from exc
    return np.asarray(out).astype(spec.dtype, copy=False)


def _encode_small(frame: np.ndarray, spec: FrameSpec) -> bytes:
    """Reversible encode with fewer resolutions, for images too small for six."""
    import imagecodecs

    levels = max(1, min(spec.rows, spec.columns).bit_length())
    try:
        return bytes(
            imagecodecs.jpeg2k_encode(
                frame,
                codecformat="j2k",
                reversible=True,
                bitspersample=spec.bits_stored,
                resolutions=min(levels, 6),
                mct=spec.samples == 3,
            )
        )
    except Exception as exc:
        raise CodecError(f"OpenJPEG could not encode the frame: {exc}") from exc


def _encode(frame: np.ndarray, spec: FrameSpec, ratio: float | None) -> bytes:
    import openjpeg

    colour = spec.samples == 3
    try:
        return bytes(
            openjpeg.encode(
                frame,
                bits_stored=spec.bits_stored,
                photometric_interpretation=_SRGB if colour else _GREYSCALE,
                use_mct=colour,
                compression_ratios=None if ratio is None else [ratio],
            )
        )
    except Exception as exc:
        raise CodecError(f"OpenJPEG could not encode the frame: {exc}") from exc


BACKEND = Backend("j2k", is_available, encode, decode, min_lossy_side=MIN_LOSSY_SIDE, one_bit=True)
