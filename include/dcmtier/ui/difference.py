"""The worst frame's difference image, rendered by the server as a PNG.

Derived minus original in modality units (HU for CT), on a diverging scale symmetric about
zero: blue where the copy is darker, red where it is brighter, white where they agree, full
colour at the frame's largest absolute difference. The original's pixels come from a
bit-exact (lossless) copy when the catalogue has one, else from the source file; either way
the file is read on the api-server and its path is never shown. The same two frames are also
drawn through the modality's usual display windows (``dcmtier.ui.windows``), side by side.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from dcmtier.measure.metrics import ModalityLUT
from dcmtier.ui.windows import Windowed, render

MAX_SIDE: Final = 768  # larger frames are shown subsampled


@dataclass(frozen=True)
class Difference:
    png: bytes
    max_abs: float  # the value at full colour, in ``unit``
    unit: str
    rows: int
    columns: int
    windows: tuple[Windowed, ...] = ()  # the original and derived frames, windowed


def difference_image(original: Path, derived: Path, frame: int) -> Difference:
    """Decode ``frame`` of both files and colour their difference.

    Raises
    ------
    dcmtier.errors.DcmtierError
        A file cannot be read or decoded (the message names it: do not show it).
    ValueError
        The two frames differ in shape, or the file has fewer frames.
    """
    import imagecodecs

    from dcmtier.codec.pixels import read_source

    before, after = read_source(original), read_source(derived)
    lut = ModalityLUT.from_dataset(before.dataset)
    a, b = _frame(before.iter_frames(), frame), _frame(after.iter_frames(), frame)
    if a.shape != b.shape:
        raise ValueError(f"frame shapes differ: {a.shape} and {b.shape}")
    diff = (b.astype(np.float64) - a.astype(np.float64)) * lut.slope
    step = max(1, -(-max(diff.shape[:2]) // MAX_SIDE))
    windows = render(
        before.dataset,
        _modality(a[::step, ::step], lut),
        _modality(b[::step, ::step], ModalityLUT.from_dataset(after.dataset)),
        inverted=str(before.dataset.get("PhotometricInterpretation")) == "MONOCHROME1",
    )
    if diff.ndim == 3:  # colour: the channel with the largest difference
        diff = np.take_along_axis(diff, np.abs(diff).argmax(axis=-1)[..., None], -1)[..., 0]
    shown = diff[::step, ::step]
    max_abs = float(np.abs(diff).max())
    png = imagecodecs.png_encode(colour(shown, max_abs))
    rows, columns = int(diff.shape[0]), int(diff.shape[1])
    return Difference(bytes(png), max_abs, lut.unit, rows, columns, tuple(windows))


def _modality(stored: np.ndarray, lut: ModalityLUT) -> np.ndarray:
    """Stored values in modality units (a colour frame: as stored)."""
    if stored.ndim == 3:
        return stored.astype(np.float64)
    return stored.astype(np.float64) * lut.slope + lut.intercept


def colour(diff: np.ndarray, max_abs: float) -> np.ndarray:
    """RGB (uint8) of a signed difference: blue (-max) through white (0) to red (+max)."""
    t = np.clip(diff / max_abs, -1.0, 1.0) if max_abs > 0 else np.zeros_like(diff)
    fade = (255 * (1 - np.abs(t))).astype(np.uint8)
    full = np.full(t.shape, 255, np.uint8)
    red = np.where(t >= 0, full, fade)
    blue = np.where(t <= 0, full, fade)
    return np.ascontiguousarray(np.stack([red, fade, blue], axis=-1))


def _frame(frames: Iterator[np.ndarray], index: int) -> np.ndarray:
    found = next(itertools.islice(frames, index, None), None)
    if found is None:
        raise ValueError(f"no frame {index}")
    return np.asarray(found)
