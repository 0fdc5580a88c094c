"""Near-lossless coding to a bound in modality units: the NEAR one instance gets.

A bound tier coded with JPEG-LS (``jls-maxerr20``) states its bound in modality units (HU for
CT; stored values without a rescale). The codestream's NEAR caps |decoded - stored| per stored
value, so a bound of N modality units is NEAR = floor(N / |Rescale Slope|); NEAR 0 is lossless
(transfer syntax ...4.80, the SOP Instance UID kept). The bound must be expressible in stored
units: a Modality LUT Sequence (a table, possibly non-linear), a rescale that differs from
frame to frame, or a bound without a max |difference| is refused with its rule. NEAR is capped
at what the codestream's precision allows (a smaller NEAR meets the bound all the same).

The same NEAR drives the JPEG XL candidate of a choosing tier (``maxerr20``): each frame's
values moved to a lattice of step 2 * NEAR + 1 (`dcmtier.codec.backends.jpegxl.quantise`), then
coded losslessly; no codestream declares that NEAR, so the decoded frames are what is checked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydicom import Dataset

from dcmtier.codec import backends as codecs
from dcmtier.codec.backends import Encoded
from dcmtier.codec.backends.jpegls import codestream_near, max_near
from dcmtier.codec.pixels import SourceImage
from dcmtier.errors import PolicyRefused, VerificationFailed
from dcmtier.measure.metrics import ModalityLUT
from dcmtier.tiers import JLS, JXL, JXL_LOSSLESS_EFFORT, JXL_NEAR_EFFORT, Tier

# (frame index, decoded frame) -> None, or raise: the check every decoded candidate frame gets
FrameCheck = Callable[[int, np.ndarray], None]


@dataclass
class Frames:
    """One candidate's frames for an instance and the time each cost (encode and checks)."""

    tier: Tier  # the tier as coded for this instance (`Tier.chosen`)
    encoded: list[Encoded]
    encode_ms: list[float]

    @property
    def bytes(self) -> int:
        return sum(len(e.data) for e in self.encoded)


def near_for(tier: Tier, source: SourceImage, lut: ModalityLUT) -> int:
    """NEAR = floor(bound / |slope|) for ``source``, capped by its precision; or refuse."""
    bound = tier.bound.max_abs_diff if tier.bound is not None else None
    if bound is None:
        raise PolicyRefused(
            f"tier {tier.name}: near-lossless coding bounds the max |difference| only, and "
            "this bound has none",
            rule="bound:not-in-stored-units",
        )
    _check_linear(source.dataset)
    slope = abs(lut.slope)
    if not math.isfinite(slope) or slope == 0:
        raise PolicyRefused(
            f"Rescale Slope {lut.slope} maps no bound to stored values",
            rule="bound:not-in-stored-units",
        )
    near = math.floor(bound / slope)
    if near * slope > bound:  # a floating-point floor that rounded up
        near -= 1
    return max(0, min(near, max_near(source.spec.bits_stored)))


def _check_linear(ds: Dataset) -> None:
    """Refuse sources whose stored values are not mapped by one linear rescale."""
    if "ModalityLUTSequence" in ds:
        raise PolicyRefused(
            "a Modality LUT Sequence maps stored values through a table: a bound in modality "
            "units has no one NEAR in stored values",
            rule="bound:non-linear-modality-lut",
        )
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if any("PixelValueTransformationSequence" in item for item in per_frame):
        raise PolicyRefused(
            "the rescale differs from frame to frame: one NEAR cannot express the bound",
            rule="bound:per-frame-rescale",
        )


def jls_tier(tier: Tier, near: int) -> Tier:
    """``tier`` as coded with NEAR ``near``: lossless (…4.80) at 0, else near-lossless."""
    if near == 0:
        return tier.chosen(JLS, near=0, bound=None)
    return tier.chosen(JLS, near=near)


def jxl_tier(tier: Tier, near: int) -> Tier:
    """``tier`` as coded by JPEG XL on the lattice of NEAR ``near``: lossless at 0."""
    if near == 0:
        return tier.chosen(JXL, near=0, bound=None, effort=JXL_LOSSLESS_EFFORT)
    return tier.chosen(JXL, near=near, effort=JXL_NEAR_EFFORT)


def encode_near(
    source: SourceImage, tier: Tier, check: FrameCheck, budget: int | None = None
) -> Frames | None:
    """Every frame at ``tier.near`` (a `jls_tier` or `jxl_tier`), each frame decoded and
    ``check``-ed, and for JPEG-LS the NEAR read back from each codestream. None once the bytes
    pass ``budget``."""
    backend = codecs.backend(tier.codec.label)
    out = Frames(tier, [], [])
    for index, frame in enumerate(source.iter_frames()):
        started = time.perf_counter()
        encoded = backend.encode(frame, source.spec, tier)
        written = codestream_near(encoded.data) if tier.codec is JLS else tier.near
        if written != tier.near:
            raise VerificationFailed(
                f"frame {index}: the codestream declares NEAR {written}, not {tier.near}"
            )
        if budget is not None and out.bytes + len(encoded.data) > budget:
            return None  # lost already: not worth a decode
        check(index, backend.decode(encoded.data, source.spec).reshape(source.spec.shape))
        out.encoded.append(encoded)
        out.encode_ms.append(round((time.perf_counter() - started) * 1000, 3))
    return out


def within_bound(
    source: SourceImage, tier: Tier, lut: ModalityLUT, originals: list[np.ndarray]
) -> FrameCheck:
    """A check that raises `VerificationFailed` for a frame beyond ``tier``'s max |diff| in
    modality units (exact equality for a lossless tier)."""
    limit = tier.bound.max_abs_diff if tier.bound is not None and not tier.lossless else 0.0

    def check(index: int, decoded: np.ndarray) -> None:
        worst = max_abs_diff(originals[index], decoded, lut)
        if limit is not None and worst > limit:
            raise VerificationFailed(
                f"frame {index}: max |diff| {worst:g} {lut.unit} > {limit:g} {lut.unit}"
            )

    return check


def max_abs_diff(original: np.ndarray, decoded: np.ndarray, lut: ModalityLUT) -> float:
    """The largest |difference| of two frames of stored values, in modality units."""
    if original.shape != decoded.shape:
        raise VerificationFailed(f"decoded shape {decoded.shape}, source {original.shape}")
    diff = np.abs(original.astype(np.int64) - decoded.astype(np.int64)).max(initial=0)
    return float(diff) * abs(lut.slope)
