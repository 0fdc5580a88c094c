"""The worst frame's original and derived images as a reader sees them: 8-bit PNGs through
the modality's usual display windows, drawn by the server.

CT gets the three windows radiologists page through: soft tissue (W 400 / L 40 HU), lung
(W 1500 / L -600) and bone (W 1800 / L 400). Any other modality gets the header's first VOI
window (Window Center and Width, top level or in the shared functional groups) when it has
one, else a window over the original frame's 0.5th to 99.5th percentile, used for the derived
frame too so that the two are drawn alike. The window maps modality values (stored values
through the Modality LUT, each file its own) linearly to 0-255 (DICOM's "LINEAR" VOI
function); MONOCHROME1 is drawn inverted. A colour frame is shown as stored (one "as stored"
pair, no window).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

CT_WINDOWS: Final = (
    ("soft tissue", 400.0, 40.0),
    ("lung", 1500.0, -600.0),
    ("bone", 1800.0, 400.0),
)
PERCENTILES: Final = (0.5, 99.5)


@dataclass(frozen=True)
class Window:
    name: str  # "soft tissue", "header", "0.5-99.5 percentile", "as stored"
    width: float | None  # None: no window (a colour frame, shown as stored)
    center: float | None


@dataclass(frozen=True)
class Windowed:
    """One window's pair of PNGs (the same size as the difference image)."""

    window: Window
    original_png: bytes
    derived_png: bytes


def windows_for(dataset: Any, original: NDArray[np.float64]) -> list[Window]:
    """The windows to draw ``original`` (modality values) of a file whose header is
    ``dataset`` with: CT's three, else the header's first, else a percentile window."""
    if original.ndim == 3:
        return [Window("as stored", None, None)]
    if str(dataset.get("Modality") or "") == "CT":
        return [Window(name, width, center) for name, width, center in CT_WINDOWS]
    found = header_window(dataset)
    if found is not None:
        return [found]
    low, high = (float(v) for v in np.percentile(original, PERCENTILES))
    width = max(high - low, 1.0)
    return [Window("0.5-99.5 percentile", width, low + width / 2)]


def header_window(dataset: Any) -> Window | None:
    """The first Window Center / Window Width pair of the header (top level, else the shared
    functional groups' Frame VOI LUT), when its width is positive."""
    source = dataset if "WindowCenter" in dataset else _shared_voi(dataset)
    if source is None or "WindowCenter" not in source or "WindowWidth" not in source:
        return None
    center, width = _first(source.WindowCenter), _first(source.WindowWidth)
    if width is None or center is None or width <= 0:
        return None
    return Window("header", width, center)


def render(
    dataset: Any,
    original: NDArray[np.float64],
    derived: NDArray[np.float64],
    inverted: bool,
) -> list[Windowed]:
    """Each window's pair of PNGs of two frames (modality values, already subsampled)."""
    import imagecodecs

    pairs = []
    for window in windows_for(dataset, original):
        pngs = [
            bytes(imagecodecs.png_encode(to_bytes(values, window, inverted)))
            for values in (original, derived)
        ]
        pairs.append(Windowed(window, pngs[0], pngs[1]))
    return pairs


def to_bytes(values: NDArray[np.float64], window: Window, inverted: bool) -> NDArray[np.uint8]:
    """8-bit samples of modality values through ``window`` (a colour frame: scaled to its
    own largest sample when above 255)."""
    if window.width is None or window.center is None:
        top = float(values.max(initial=0.0))
        scaled = values * (255.0 / top) if top > 255 else values
        return np.ascontiguousarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))
    low = window.center - window.width / 2
    t = np.clip((values - low) / window.width, 0.0, 1.0)
    if inverted:
        t = 1.0 - t
    return np.ascontiguousarray(np.rint(t * 255.0).astype(np.uint8))


def _shared_voi(dataset: Any) -> Any:
    try:
        return dataset.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
    except (AttributeError, IndexError, KeyError):
        return None


def _first(value: Any) -> float | None:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        value = value[0] if len(value) else None
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
