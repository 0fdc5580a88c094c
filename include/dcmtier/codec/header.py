"""What a source's header says of its pixels, checked: the frame layout, the frame count, and
a usable Rescale Slope. Each check raises ``InvalidInput`` naming the file and what is wrong.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydicom import Dataset

from dcmtier.codec.backends import FrameSpec
from dcmtier.errors import InvalidInput, one_line


def check_rescale(path: Path, ds: Dataset) -> None:
    """A Rescale Slope of 0 maps every stored value to one modality value: unusable."""
    slope = ds.get("RescaleSlope")
    if slope is None or slope == "":
        return
    try:
        value = float(slope)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{path}: invalid input: RescaleSlope {slope!r} is not a number"
        ) from exc
    if value == 0 or math.isnan(value):
        raise InvalidInput(
            f"{path}: invalid input: RescaleSlope {slope}: no modality LUT maps stored values"
        )


def int_attr(path: Path, ds: Dataset, keyword: str, *, default: int) -> int:
    value = ds.get(keyword)
    try:
        number = int(value) if value not in (None, "") else default
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{path}: invalid input: {keyword} {value!r}") from exc
    if number < 1:
        raise InvalidInput(f"{path}: invalid input: {keyword} {number}")
    return number


def frame_spec(path: Path, ds: Dataset) -> FrameSpec:
    for keyword in ("Rows", "Columns", "BitsStored"):
        if keyword in ds:  # 0 is "no image" (Rows, Columns) or "no bits" (BitsStored)
            int_attr(path, ds, keyword, default=1)
    try:
        samples = int(ds.SamplesPerPixel)
        allocated = int(ds.BitsAllocated)
        stored = int(ds.get("BitsStored") or allocated)
        spec = FrameSpec(
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            samples=samples,
            bits_allocated=allocated,
            bits_stored=stored,
            signed=int(ds.get("PixelRepresentation", 0)) == 1,
            photometric="RGB" if samples == 3 else str(ds.PhotometricInterpretation),
        )
    except (AttributeError, ValueError, TypeError) as exc:
        raise InvalidInput(f"{path}: incomplete Image Pixel module: {one_line(exc)}") from exc
    if allocated not in (1, 8, 16) or not 1 <= stored <= allocated or samples not in (1, 3):
        raise InvalidInput(
            f"{path}: unsupported layout: BitsAllocated {allocated}, BitsStored {stored}, "
            f"SamplesPerPixel {samples} (dcmtier codes 1-, 8- and 16-bit, 1 or 3 samples)"
        )
    return spec
