"""Per-frame image quality of a decoded output against its original (docs/concepts/metrics.md).

Every metric is in modality units (stored value x Rescale Slope + Intercept: HU for CT), so a
"max |diff| 20" means 20 HU whatever the pixel representation. SSIM is Wang et al. 2004 with the
parameters scikit-image uses for it (Gaussian sigma 1.5 truncated to 11x11, K1 0.01, K2 0.03,
population covariance, a 5-pixel border left out of the mean) and agrees with
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=L)`` to about 1e-8; scikit-image is not needed.

PSNR and SSIM are computed twice, from one pass of the filters: against the nominal peak
(2^BitsStored - 1)|slope| (``psnr_db``, ``ssim``: the reference survey's definition, kept so
results compare with it) and against the source frame's own data range (``psnr_db_range``,
``ssim_range``, ``data_range``: ``dcmtier.measure.datarange``), which is what gates and bounds
judge, because the nominal peak saturates on images that use a small part of it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dcmtier.measure.datarange import Span, frame_span

_SIGMA = 1.5
_RADIUS = int(3.5 * _SIGMA + 0.5)  # 5: scipy's radius for truncate=3.5, which skimage passes
_TAPS = np.exp(-0.5 * (np.arange(-_RADIUS, _RADIUS + 1) / _SIGMA) ** 2)
_KERNEL = (_TAPS / _TAPS.sum()).astype(np.float32)
_K1, _K2 = 0.01, 0.03
_BAND_PIXELS = 1 << 16  # SSIM works in bands of about this many output pixels (256 KiB each)

Flat = NDArray[np.float32]  # a band of rows, flattened


@dataclass(frozen=True, kw_only=True)
class ModalityLUT:
    """The linear Modality LUT that maps stored values to modality units, and the stored depth."""

    slope: float = 1.0
    intercept: float = 0.0
    bits_stored: int
    unit: str = "stored value"

    def __post_init__(self) -> None:
        if self.slope == 0 or not 1 <= self.bits_stored <= 32:
            raise ValueError(
                f"unusable modality LUT: slope {self.slope}, bits stored {self.bits_stored}"
            )

    @property
    def peak(self) -> float:
        """The nominal PSNR peak and SSIM L: (2^BitsStored - 1)|slope| in modality units."""
        return float((2**self.bits_stored - 1) * abs(self.slope))

    @classmethod
    def from_dataset(cls, ds: Any, *, bits_stored: int | None = None) -> ModalityLUT:
        """Read the rescale of a pydicom Dataset (top level, else shared functional groups).

        The unit is "HU" for CT with a rescale, else the Rescale Type, else "modality value"
        when a rescale is present, else "stored value". ``bits_stored`` replaces the header's
        when the stored values need more bits than it says (the peak then covers them).
        """
        source = ds if "RescaleSlope" in ds else _shared_rescale(ds)
        rescaled = source is not None and "RescaleSlope" in source
        slope = float(source.RescaleSlope) if rescaled else 1.0
        intercept = float(getattr(source, "RescaleIntercept", 0.0)) if rescaled else 0.0
        if rescaled and ds.get("Modality") == "CT":
            unit = "HU"
        elif rescaled:
            unit = str(source.get("RescaleType") or "modality value")
        else:
            unit = "stored value"
        bits = bits_stored if bits_stored is not None else int(ds.BitsStored)
        return cls(slope=slope, intercept=intercept, bits_stored=bits, unit=unit)


def _shared_rescale(ds: Any) -> Any:
    """The Pixel Value Transformation item of an enhanced multi-frame object, if any."""
    try:
        return ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    except (AttributeError, IndexError):
        return None


@dataclass(frozen=True)
class FrameMetrics:
    """Quality of one decoded frame against its original, in modality units (``unit``)."""

    frame: int
    mse: float  # unit^2
    psnr_db: float  # against psnr_peak; +inf when mse == 0
    psnr_peak: float  # unit; PSNR means nothing without it
    ssim: float | None  # L = psnr_peak; None when the frame is smaller than the 11x11 window
    pixel_match_pct: float
    max_abs_diff: float
    mean_abs_diff: float
    unit: str
    # against the source frame's own range (what gates and bounds judge)
    psnr_db_range: float  # peak = data_range; +inf when mse == 0
    ssim_range: float | None  # L = data_range
    data_range: float  # unit: the source frame's 0.1-99.9 percentile span (datarange)
    # SSIM against the range is that of the values less the range's bottom (datarange.Span)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (the quality dataset's column names)."""
        return asdict(self)


def _planes(frame: NDArray[Any]) -> NDArray[Any]:
    """A frame's stored values as (samples, rows, columns) integers: a view, not a copy."""
    arr = np.asarray(frame)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"stored values must be integers, not {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"a frame is (rows, columns[, samples]), not shape {arr.shape}")
    return arr[np.newaxis] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def _correlate(source: Flat, step: int, out: Flat, scratch: Flat) -> Flat:
    """``out[k] = sum_j kernel[j] * source[k + j * step]`` over the 11 taps of the Gaussian.

    On a row-major band flattened, ``step`` = columns filters down the columns and ``step`` = 1
    along the rows; only outputs whose window lies inside the band are kept by the caller, which
    are exactly the values scikit-image keeps after cropping its border (so no boundary mode).
    The kernel is symmetric: each pair of taps is added before multiplying.
    """
    n = out.size
    np.multiply(source[_RADIUS * step : _RADIUS * step + n], _KERNEL[_RADIUS], out=out)
    for j in range(_RADIUS):
        far = (2 * _RADIUS - j) * step
        np.add(source[j * step : j * step + n], source[far : far + n], out=scratch)
        scratch *= _KERNEL[j]
        out += scratch
    return out


class _Workspace:
    """Flat float32 buffers for SSIM over bands of ``rows`` rows of planes ``columns`` wide.

    Why (measured: 512x512 SSIM went from about 20 ms to about 6 ms on the 2-core machine):
    numpy temporaries the size of a frame are fresh memory that the kernel maps and zeroes on
    every call, so the work runs band by band through these few buffers, which each thread
    keeps (``_workspace``); a band is flat, so every operation is on contiguous memory (the last
    10 columns of each filtered row are then meaningless and left out of the sum).
    """

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.rows = max(16, _BAND_PIXELS // columns)
        size_in, size_out = (self.rows + 2 * _RADIUS) * columns, self.rows * columns
        self.pq = np.empty((2, size_in), dtype=np.float32)
        self.work = np.empty((7, size_out), dtype=np.float32)
        self._square = np.empty(size_in, dtype=np.float32)
        self._down = np.zeros(size_out + 2 * _RADIUS, dtype=np.float32)  # tail read, never kept
        self._scratch = np.empty(size_out, dtype=np.float32)

    def blur(self, image: Flat, out: Flat) -> Flat:
        """Gaussian local means of the rows of ``out`` (``image`` has 2 x 5 rows more)."""
        _correlate(image, self.columns, self._down[: out.size], self._scratch[: out.size])
        return _correlate(self._down, 1, out, self._scratch[: out.size])

    def blur_square(self, image: Flat, out: Flat) -> Flat:
        return self.blur(np.square(image, out=self._square[: image.size]), out)


_THREAD = threading.local()


def _workspace(columns: int) -> _Workspace:
    """This thread's workspace for planes ``columns`` wide (a few widths are kept)."""
    spaces: dict[int, _Workspace] = _THREAD.__dict__.setdefault("workspaces", {})
    if columns not in spaces:
        if len(spaces) >= 4:
            spaces.clear()
        spaces[columns] = _Workspace(columns)
    return spaces[columns]


class _Bands:
    """SSIM of one frame's integer planes, summed band by band in a ``_Workspace``.

    Filtering p = a + b and q = a - b and their squares takes four filters instead of five
    (a, b, a², b², ab), and float32 stays exact enough: q is small, p is centred on the frame,
    and variances do not depend on the centre (``_offset`` adds it back to the local means).
    The SSIM ratios are computed doubled, numerator and denominator alike, once per scale of
    ``scales`` from the same filtered means and variances: a scale is (L, the level that
    counts as 0 for the luminance term, in modality units).
    """

    def __init__(
        self,
        ws: _Workspace,
        lut: ModalityLUT,
        centre: int,
        scales: tuple[tuple[float, float], ...],
    ) -> None:
        self._ws, self._slope, self._centre2 = ws, np.float32(lut.slope), np.float32(2 * centre)
        offset = 2 * (centre * lut.slope + lut.intercept)
        self._constants = [
            (np.float32(offset - 2 * zero), np.float32(2 * (_K1 * L) ** 2),
             np.float32(2 * (_K2 * L) ** 2))
            for L, zero in scales
        ]  # fmt: skip

    def _sum_and_difference(self, a: NDArray[Any], b: NDArray[Any]) -> tuple[Flat, Flat]:
        """p = a + b - 2 centre and q = a - b in modality units (exact before the slope)."""
        p, q = self._ws.pq[:, : a.size]
        np.add(a, b, out=p.reshape(a.shape), dtype=np.float32)
        p -= self._centre2
        np.subtract(a, b, out=q.reshape(a.shape), dtype=np.float32)
        if self._slope != 1:
            p *= self._slope
            q *= self._slope
        return p, q

    def ssim_sums(self, a: NDArray[Any], b: NDArray[Any]) -> list[float]:
        """Sums of the SSIM maps over a band of rows, one per L (``a`` and ``b`` carry 2 x 5
        rows more)."""
        ws = self._ws
        p, q = self._sum_and_difference(a, b)
        rows = a.shape[0] - 2 * _RADIUS
        mean_p, mean_q, var_p, var_q, num, den, tmp = ws.work[:, : rows * ws.columns]
        ws.blur(p, mean_p)
        ws.blur(q, mean_q)
        ws.blur_square(p, var_p)
        var_p -= np.square(mean_p, out=num)  # vx + vy + 2 vxy
        ws.blur_square(q, var_q)
        var_q -= np.square(mean_q, out=num)  # vx + vy - 2 vxy
        np.square(mean_q, out=mean_q)  # (ux - uy)²
        sums = []
        for offset, c1, c2 in self._constants:
            np.add(mean_p, offset, out=tmp)  # ux + uy, from this scale's 0
            np.square(tmp, out=tmp)
            np.subtract(tmp, mean_q, out=num)  # luminance: (4 ux uy + 2 C1)
            num += c1
            np.add(tmp, mean_q, out=den)  # / (2 ux² + 2 uy² + 2 C1)
            den += c1
            num /= den
            np.subtract(var_p, var_q, out=den)  # structure: (4 vxy + 2 C2)
            den += c2
            np.add(var_p, var_q, out=tmp)  # / (2 vx + 2 vy + 2 C2)
            tmp += c2
            den /= tmp
            num *= den
            kept = num.reshape(rows, ws.columns)[:, : ws.columns - 2 * _RADIUS]
            sums.append(float(np.sum(kept, dtype=np.float64)))
        return sums


def _ssim(
    a: NDArray[Any],
    b: NDArray[Any],
    lut: ModalityLUT,
    scales: tuple[tuple[float, float], ...],
    *,
    identical: bool = False,
) -> list[float] | None:
    """Per (L, zero level) of ``scales``, the mean over samples of each sample plane's mean
    SSIM; None below the 11x11 window.

    ``identical`` frames (every lossless output) skip the filters: their SSIM is exactly 1,
    each ratio in the map being a value over itself, which is what the filters give too.
    """
    samples, rows, columns = a.shape
    if min(rows, columns) < 2 * _RADIUS + 1:
        return None
    if identical:
        return [1.0] * len(scales)
    ws = _workspace(columns)
    bands = _Bands(ws, lut, round(float(a.mean())), scales)
    totals = [0.0] * len(scales)
    for plane_a, plane_b in zip(a, b, strict=True):
        for start in range(0, rows - 2 * _RADIUS, ws.rows):
            stop = min(start + ws.rows + 2 * _RADIUS, rows)
            sums = bands.ssim_sums(plane_a[start:stop], plane_b[start:stop])
            totals = [t + s for t, s in zip(totals, sums, strict=True)]
    count = float(samples * (rows - 2 * _RADIUS) * (columns - 2 * _RADIUS))
    return [t / count for t in totals]


def _psnr(peak: float, mse: float) -> float:
    return 10 * math.log10(peak**2 / mse) if mse > 0 else math.inf


def frame_metrics(
    original: NDArray[Any],
    decoded: NDArray[Any],
    lut: ModalityLUT,
    frame: int = 0,
    *,
    with_ssim: bool = True,
    span: Span | None = None,
) -> FrameMetrics:
    """Compare one decoded frame with its original (docs/concepts/metrics.md).

    Parameters
    ----------
    original, decoded : numpy.ndarray
        Stored values of one frame, shape (rows, columns) or (rows, columns, samples). For
        colour, the difference metrics cover every sample and SSIM is the mean of the
        per-sample SSIMs (as scikit-image with ``channel_axis=-1``).
    lut : ModalityLUT
        Rescale and bits stored of the original, giving the unit and the nominal peak.
    frame : int
        Frame index to record.
    with_ssim : bool
        False leaves SSIM out (None), the costliest metric: for a search whose gate has no
        SSIM limit.
    span : Span, optional
        The original's data range, when the caller measured it already (a search comparing
        many candidates with one original); by default measured here
        (``dcmtier.measure.datarange.frame_span``). The range-relative SSIM is that of the
        values less ``span.low``, with L = ``span.width``.

    Returns
    -------
    FrameMetrics
        MSE, PSNR (+inf when identical) and SSIM (None below 11x11) against the nominal peak
        and against the data range, pixel match %, max and mean absolute difference, all in
        ``lut.unit``.

    Raises
    ------
    ValueError
        If the shapes differ or the values are not integers.
    """
    if np.shape(original) != np.shape(decoded):
        raise ValueError(f"shapes differ: {np.shape(original)} vs {np.shape(decoded)}")
    a, b = _planes(original), _planes(decoded)
    span = span if span is not None else frame_span(a, lut.slope, lut.intercept)
    diff = np.subtract(a, b, dtype=np.promote_types(np.result_type(a, b), np.int32))
    np.abs(diff, out=diff)
    slope = abs(lut.slope)
    mse = float(np.einsum("ijk,ijk->", diff, diff, dtype=np.float64)) / diff.size * slope**2
    scales = ((lut.peak, 0.0), (span.width, span.low))
    ssim = _ssim(a, b, lut, scales, identical=mse == 0) if with_ssim else None
    return FrameMetrics(
        frame=frame,
        mse=mse,
        psnr_db=_psnr(lut.peak, mse),
        psnr_peak=lut.peak,
        ssim=None if ssim is None else ssim[0],
        pixel_match_pct=100.0 * (diff.size - np.count_nonzero(diff)) / diff.size,
        max_abs_diff=float(diff.max()) * slope,
        mean_abs_diff=float(np.sum(diff, dtype=np.float64)) / diff.size * slope,
        unit=lut.unit,
        psnr_db_range=_psnr(span.width, mse),
        ssim_range=None if ssim is None else ssim[1],
        data_range=span.width,
    )


def iter_frame_metrics(
    original_frames: Iterable[NDArray[Any]],
    decoded_frames: Iterable[NDArray[Any]],
    lut: ModalityLUT,
) -> Iterator[FrameMetrics]:
    """Yield ``frame_metrics`` for each pair of frames, numbered from 0.

    Each argument iterates over frames, e.g. an array of shape (frames, rows, columns[, samples]).

    Raises
    ------
    ValueError
        If the two hold different numbers of frames (raised when the shorter one ends).
    """
    for index, (a, b) in enumerate(zip(original_frames, decoded_frames, strict=True)):
        yield frame_metrics(a, b, lut, index)
