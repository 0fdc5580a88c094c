"""Noisy sample CT series with the values that trip near-lossless JPEG-LS (issue #27).

``python -m tests.unit.work.frontier_cases OUT [SLICES] [SIZE]`` writes the three series under
OUT/<kind>/ for a run of ``dcmtier process`` by hand.

- ``signed``: signed HU, 12 bits stored, air padding of -2000 outside the field of view;
- ``padded``: signed HU, 16 bits stored, padding of -32768 outside the field of view (the
  two's-complement view puts it next to 32767: near-lossless errors of 65535 if not offset);
- ``unsigned``: HU + 1024 unsigned, 12 bits stored, with a block at 4095 (a 16-bit precision
  let it decode to 4115).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from pydicom import dcmread

from dcmtier.sample import write_ct_series

KINDS = ("signed", "padded", "unsigned")
NOISE_HU = 15.0


def write_case(folder: Path, kind: str, *, slices: int = 2, size: int = 64) -> list[Path]:
    """Write one series of ``kind`` (see the module docstring) into ``folder``."""
    files = write_ct_series(
        folder, slices=slices, rows=size, columns=size, signed=kind != "unsigned",
        noise_hu=NOISE_HU, seed=KINDS.index(kind),
    )  # fmt: skip
    for path in files:
        ds = dcmread(path)
        pixels = ds.pixel_array.copy()
        if kind == "unsigned":
            pixels[: max(2, size // 16), :] = 4095
        else:
            rows, columns = np.ogrid[:size, :size]
            outside = (rows - size / 2) ** 2 + (columns - size / 2) ** 2 > (size * 0.48) ** 2
            pad = -2000 if kind == "signed" else -32768
            pixels[outside] = pad
            ds.add_new(0x00280120, "SS", pad)  # Pixel Padding Value
            if kind == "padded":
                ds.BitsStored, ds.HighBit = 16, 15
        ds.PixelData = pixels.tobytes()
        ds.save_as(path, enforce_file_format=True)
    return files


def main(out: Path, slices: int, size: int) -> None:
    for kind in KINDS:
        write_case(out / kind, kind, slices=slices, size=size)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 24,
         int(sys.argv[3]) if len(sys.argv) > 3 else 256)  # fmt: skip
