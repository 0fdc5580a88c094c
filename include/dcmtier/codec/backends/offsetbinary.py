"""Signed stored values as the unsigned samples JPEG-LS (near-lossless) and JPEG XL code.

Both code unsigned samples only, so a signed frame is coded in offset binary, value +
2^(BitsStored - 1), which keeps neighbouring values neighbours (in a two's-complement view -1
and 0 lie 2^BitsStored - 1 apart). The output then holds unsigned samples: Pixel
Representation 0, and a Rescale Intercept lowered by the offset times the slope so that every
modality value is unchanged (``derive.build_output``). A signed source whose modality values
are not a plain rescale (no Rescale Intercept, a Modality LUT Sequence, a Real World Value
Mapping) is refused: the offset could not be compensated there (`check_rescalable`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dcmtier.errors import PolicyRefused

if TYPE_CHECKING:
    from pydicom import Dataset

    from dcmtier.codec.backends import FrameSpec

STORED_VALUE_MAPPINGS = ("ModalityLUTSequence", "RealWorldValueMappingSequence")


def half_range(bits_stored: int) -> int:
    """The offset of a signed value of this precision: 2^(BitsStored - 1)."""
    return 1 << (bits_stored - 1)


def to_offset_binary(frame: np.ndarray, spec: FrameSpec, offset: int) -> np.ndarray:
    """Stored values plus ``offset``, as the unsigned type of the frame's width."""
    unsigned = np.dtype(spec.dtype.str.replace("i", "u"))
    return (frame.astype(np.int32) + offset).astype(unsigned)


def from_offset_binary(decoded: np.ndarray, spec: FrameSpec, offset: int) -> np.ndarray:
    """Decoded samples back to stored values: ``offset`` taken off, in the frame's type."""
    return (decoded.astype(np.int32) - offset).astype(spec.dtype)


def check_rescalable(
    dataset: Dataset, spec: FrameSpec, *, codec: str, coded: str, rule: str
) -> None:
    """Refuse a signed source whose modality values an offset would change.

    ``codec`` names the codec and ``coded`` when the offset applies (" for near-lossless
    coding", or "" when always) in the refusal, whose rule is ``rule``.
    """
    if not spec.signed:
        return
    mapped = [k for k in STORED_VALUE_MAPPINGS if k in dataset]
    if "RescaleIntercept" not in dataset or mapped:
        why = f"it has a {mapped[0]}" if mapped else "it has no Rescale Intercept"
        raise PolicyRefused(
            f"{codec} codes unsigned samples: signed stored values are offset{coded} and the "
            f"Rescale Intercept compensates, which this source does not allow ({why})",
            rule=rule,
        )
