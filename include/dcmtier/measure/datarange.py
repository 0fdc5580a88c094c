"""The data range that quality bounds and gates measure against: the source frame's own.

PSNR's peak and SSIM's L, taken as the nominal range (2^BitsStored - 1)|slope|, saturate on an
image that uses a small part of it: a CT stored in 16 bits with values 0..1,200 gets SSIM 0.9999
where the error is a quarter of its content. Bounds and gates therefore use the range of the
values the source frame holds, in modality units: the span from its 0.1st to its 99.9th
percentile (the lowest and highest thousandth of the values left out, at least one value on each
side, so that a hot pixel or a dead one does not widen it), times |Rescale Slope|. A constant
frame gets one stored step (|slope|), the smallest difference its values can show, so any change
to it counts in full.

SSIM against the range is computed on the values less the bottom of the range (``Span.low``),
that is on the frame mapped onto 0..L as SSIM's constants assume, so neither the intercept nor
signed or unsigned storage changes it (SSIM's luminance term depends on the mean level, which
in HU sits near -1000 for air). A percentile range is never wider than max - min, and SSIM and
PSNR only grow with L, so a frame that meets a limit against this range meets it against
max - min too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

# The share of values left out at each end: 1/1000, i.e. the 0.1st and 99.9th percentiles.
TRIMMED_SHARE: Final = 0.001


def trimmed_count(size: int) -> int:
    """How many of ``size`` values are left out at each end: 0.1 %, at least 1, never all."""
    return min(max(1, int(size * TRIMMED_SHARE)), (size - 1) // 2)


@dataclass(frozen=True)
class Span:
    """A frame's data range in modality units: ``low`` its bottom, ``width`` the range (L)."""

    low: float
    width: float


def frame_span(frame: NDArray[Any], slope: float = 1.0, intercept: float = 0.0) -> Span:
    """The data range of one source frame in modality units (see the module docstring).

    Parameters
    ----------
    frame : numpy.ndarray
        Stored values of the original frame (any shape; colour samples are pooled).
    slope, intercept : float
        Rescale Slope and Intercept of the frame's modality LUT.

    Returns
    -------
    Span
        ``width`` = (the value at rank k from the top - the value at rank k from the bottom)
        x |slope| with k = `trimmed_count`, at least ``|slope|``; ``low`` the lower of the two
        in modality units.

    Raises
    ------
    ValueError
        The frame is empty or the slope is 0.
    """
    values = np.ravel(frame)
    if values.size == 0 or slope == 0:
        raise ValueError(f"no data range for {values.size} values with slope {slope}")
    k = trimmed_count(values.size)
    bottom, top = np.partition(values, (k, values.size - 1 - k))[[k, values.size - 1 - k]]
    ends = (float(bottom) * slope + intercept, float(top) * slope + intercept)
    return Span(low=min(ends), width=max(float(top) - float(bottom), 1.0) * abs(slope))


def data_range(frame: NDArray[Any], slope: float = 1.0) -> float:
    """The width of `frame_span`: the range L of one source frame in modality units."""
    return frame_span(frame, slope).width
