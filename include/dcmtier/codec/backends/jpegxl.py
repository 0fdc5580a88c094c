"""JPEG XL (ISO/IEC 18181-1) through libjxl (imagecodecs): lossless, lossy at a rate, and
near-lossless on a lattice for a bound tier's candidate.

libjxl has no rate control: a rate tier searches the ``distance`` (its quality knob, 0 is
lossless, ~1 visually lossless, up to 25) until the achieved ratio lands within tolerance.

JPEG XL codes unsigned integer samples of a declared bit depth, and the codestream declares
exactly Bits Stored (so Bits Stored and High Bit stay as they were). Signed stored values are
coded in offset binary (`offsetbinary`), value + 2^(BitsStored - 1), which keeps neighbouring
values neighbours (a two's-complement view puts -1 next to 0 at 2^BitsStored - 1: measured
5 % larger lossless, and lossy errors would wrap); the output then says what the codestream holds,
Pixel Representation 0, and its Rescale Intercept is lowered by the offset times the slope so
that every modality value (HU) is unchanged (``derive.build_output``). Signed sources whose
modality values are not a plain rescale (no Rescale Intercept, a Modality LUT Sequence, a Real
World Value Mapping) are refused: the offset could not be compensated there.

Near-lossless (``tier.near`` > 0, the JPEG XL candidate of ``maxerr20``): libjxl has no mode
that bounds the max |difference|, so each frame's values are first moved to the nearest point
of a lattice of step 2 * NEAR + 1 from the frame's smallest value (`quantise`: at most NEAR
from where they were, as JPEG-LS's NEAR allows), and that image is coded losslessly; JPEG XL's
palette and predictors then code the few distinct values the lattice leaves. The output is
lossy (…4.112), labelled as such.
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
from dcmtier.codec.backends.ratecontrol import search_step
from dcmtier.errors import CodecError
from dcmtier.tiers import Tier

if TYPE_CHECKING:
    from pydicom import Dataset

MIN_LOSSY_SIDE = 8
MAX_DISTANCE = 25.0  # libjxl's upper limit
MIN_DISTANCE = 0.01


def is_available() -> bool:
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(imagecodecs.JPEGXL.available)


def check_source(dataset: Dataset, spec: FrameSpec) -> None:
    """Refuse signed sources whose modality values an offset would change (module docstring)."""
    check_rescalable(
        dataset, spec, codec="JPEG XL", coded="", rule="codec:jxl:signed-needs-rescale"
    )


def offset(spec: FrameSpec) -> int:
    """What is added to each stored value before coding: 2^(BitsStored - 1) for signed data."""
    return half_range(spec.bits_stored) if spec.signed else 0


def encode(frame: np.ndarray, spec: FrameSpec, tier: Tier) -> Encoded:
    """Encode losslessly, or search the distance that gives the tier's ratio."""
    values = _to_unsigned(frame, spec)
    effort = tier.effort
    shift = offset(spec)
    if tier.target_ratio is None and tier.near:
        data = _encode(quantise(values, tier.near, spec.bits_stored), spec, effort, None)
        near: dict[str, object] = {"effort": effort, "near": tier.near}
        return Encoded(data, spec.photometric, spec.bits_stored, params=near, offset=shift)
    if tier.target_ratio is None:
        data = _encode(values, spec, effort, None)
        lossless: dict[str, object] = {"effort": effort}
        return Encoded(data, spec.photometric, spec.bits_stored, params=lossless, offset=shift)
    target = tier.target_ratio
    # measured on the sample CT (256x256, 12 bits, effort 7): ratio 20 at distance ~2,
    # 32 at 4, 53 at 8, i.e. distance ~ 2 * (ratio / 20) ** 1.4
    first = min(MAX_DISTANCE, 2.0 * (target / 20.0) ** 1.4)
    data, distance, encodes = search_step(
        lambda d: _encode(values, spec, effort, d), spec.pixel_bytes, target, first_step=first
    )
    params: dict[str, object] = {"effort": effort, "distance": float(f"{_clamp(distance):.6g}")}
    return Encoded(data, spec.photometric, spec.bits_stored, encodes, params, offset=shift)


def decode(data: bytes, spec: FrameSpec) -> np.ndarray:
    """Stored values of one frame (signed data back from offset binary)."""
    import imagecodecs

    try:
        out = np.asarray(imagecodecs.jpegxl_decode(data, numthreads=1))
    except Exception as exc:
        raise CodecError(f"libjxl could not decode the codestream: {exc}") from exc
    if spec.signed:
        return from_offset_binary(out, spec, offset(spec))
    return out.astype(spec.dtype, copy=False)


def quantise(values: np.ndarray, near: int, bits_stored: int) -> np.ndarray:
    """``values`` (unsigned) moved to the nearest point of the lattice lo, lo + s, lo + 2s, ...
    of step s = 2 * near + 1 from their minimum lo: each within ``near`` of where it was. A
    lattice point above 2^bits_stored - 1 is capped there, which lies between the value and
    that point, so nearer still.
    """
    if values.size == 0:
        return values
    step = 2 * near + 1
    wide = values.astype(np.int64)
    low = int(wide.min())
    snapped = low + (wide - low + near) // step * step
    return np.minimum(snapped, (1 << bits_stored) - 1).astype(values.dtype)


def _to_unsigned(frame: np.ndarray, spec: FrameSpec) -> np.ndarray:
    if not spec.signed:
        return frame.astype(spec.dtype, copy=False)
    return to_offset_binary(frame, spec, offset(spec))


def _clamp(distance: float) -> float:
    return min(MAX_DISTANCE, max(MIN_DISTANCE, distance))


def _encode(
    values: np.ndarray, spec: FrameSpec, effort: int | None, distance: float | None
) -> bytes:
    import imagecodecs

    quality = {"lossless": True} if distance is None else {"distance": _clamp(distance)}
    try:
        return bytes(
            imagecodecs.jpegxl_encode(
                values,
                effort=effort,
                bitspersample=spec.bits_stored,
                numthreads=1,
                **quality,
            )
        )
    except Exception as exc:
        raise CodecError(f"libjxl could not encode the frame: {exc}") from exc


BACKEND = Backend(
    "jxl", is_available, encode, decode, min_lossy_side=MIN_LOSSY_SIDE, check_source=check_source
)
