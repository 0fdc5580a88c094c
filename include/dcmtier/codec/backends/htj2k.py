"""High-Throughput JPEG 2000 (Part 15) through OpenJPH (imagecodecs).

OpenJPH has no rate control: a rate tier searches the quantisation step until the achieved
ratio lands within tolerance. It codes the container precision (8 or 16 bits), so the
output's Bits Stored is set to match the codestream.
"""

from __future__ import annotations

import numpy as np

from dcmtier.codec.backends import Backend, Encoded, FrameSpec
from dcmtier.codec.backends.ratecontrol import search_step
from dcmtier.errors import CodecError
from dcmtier.tiers import Tier


def is_available() -> bool:
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(imagecodecs.HTJ2K.available)


def encode(frame: np.ndarray, spec: FrameSpec, tier: Tier) -> Encoded:
    """Encode reversibly (lossless) or search the step that gives the tier's ratio."""
    colour = spec.samples == 3
    precision = 8 * frame.dtype.itemsize
    if tier.target_ratio is None:
        data = _encode(frame, None)
        return Encoded(data, "YBR_RCT" if colour else spec.photometric, precision)
    target = tier.target_ratio
    # measured on the sample CT (signed and unsigned, 512x512): r10 at steps 1.5-1.9e-4, r20
    # 2.9-4.5e-4, r50 0.7-1.3e-3, r100 1.3-3.0e-3, i.e. step ~ 3.5e-4 * (ratio / 20) ** 1.07
    first = 3.5e-4 * (target / 20.0) ** 1.07
    data, step, encodes = search_step(
        lambda s: _encode(frame, s), spec.pixel_bytes, target, first_step=first
    )
    params = {"quantisation_step": float(f"{step:.6g}")}
    return Encoded(data, "YBR_ICT" if colour else spec.photometric, precision, encodes, params)


def encode_step(frame: np.ndarray, spec: FrameSpec, step: float | None) -> Encoded:
    """Encode at quantisation step ``step`` (irreversible), or reversibly when None: what a
    search to a quality bound tries (`dcmtier.work.choosing`)."""
    colour = spec.samples == 3
    precision = 8 * frame.dtype.itemsize
    data = _encode(frame, step)
    if step is None:
        return Encoded(data, "YBR_RCT" if colour else spec.photometric, precision)
    params = {"quantisation_step": float(f"{step:.6g}")}
    return Encoded(data, "YBR_ICT" if colour else spec.photometric, precision, 1, params)


def decode(data: bytes, spec: FrameSpec) -> np.ndarray:
    import imagecodecs

    try:
        out = imagecodecs.htj2k_decode(data)
    except Exception as exc:
        raise CodecError(f"OpenJPH could not decode the codestream: {exc}") from exc
    return np.asarray(out).astype(spec.dtype, copy=False)


def _encode(frame: np.ndarray, step: float | None) -> bytes:
    import imagecodecs

    try:
        if step is None:
            return bytes(imagecodecs.htj2k_encode(frame, reversible=True))
        return bytes(imagecodecs.htj2k_encode(frame, level=step, reversible=False))
    except Exception as exc:
        raise CodecError(f"OpenJPH could not encode the frame: {exc}") from exc


BACKEND = Backend("htj2k", is_available, encode, decode)
