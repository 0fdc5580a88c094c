"""``dcmtier quality``: per-frame MSE, PSNR, SSIM, pixel match and |diff| of DERIVED vs ORIGINAL.

Metrics are in the original's modality unit (HU for CT); PSNR and SSIM use the peak
(2^BitsStored - 1) x |Rescale Slope| of the original. Compressed files are decoded first.
Files are named by file key (SOP Instance UID, else a content hash); --show-paths names them
by path.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcmtier.cli import add_show_paths
from dcmtier.errors import InvalidInput
from dcmtier.records import file_key, name_by_key
from dcmtier.tiers import Use

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from dcmtier.measure.gates import Gate
    from dcmtier.measure.metrics import FrameMetrics

LOSSLESS = "lossless"


EPILOG = (
    "Exit status: 0 compared (and passed --gate), 1 a file could not be compared or a frame "
    "failed the gate, 2 bad usage. In --json output psnr_db is null when identical."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    bands = [LOSSLESS, *(use.value for use in Use)]  # DEFAULT_GATES has one gate per Use
    parser.add_argument("original", type=Path, metavar="ORIGINAL", help="the source file")
    parser.add_argument("derived", type=Path, metavar="DERIVED", help="the file made from it")
    parser.add_argument("--json", action="store_true", help="one JSON object per frame")
    parser.add_argument(
        "--gate",
        choices=bands,
        metavar="BAND",
        help=f"check each frame against a band's gate: {', '.join(bands)}",
    )
    add_show_paths(parser)


def _read_frames(path: Path) -> tuple[Any, NDArray[Any]]:
    """The dataset and its stored values as (frames, rows, columns[, samples])."""
    import pydicom

    from dcmtier.codec import syntaxes
    from dcmtier.codec.decoding import jpeg_xl_as_decodable

    syntaxes.register()
    ds = pydicom.dcmread(path)
    pixels = jpeg_xl_as_decodable(ds).pixel_array
    return ds, pixels if int(ds.get("NumberOfFrames") or 1) > 1 else pixels[None]


def _as_stored_values_of(original: Any, derived_ds: Any, derived: NDArray[Any]) -> NDArray[Any]:
    """``derived``'s values in the original's stored units, where its rescale differs.

    A JPEG XL copy of signed data stores value + 2^(BitsStored - 1) with a lower Rescale
    Intercept: the modality values are compared, so the same HU counts as no difference.
    """
    import numpy as np

    def rescale(ds: Any) -> tuple[float, float]:
        return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)

    (slope, intercept), (d_slope, d_intercept) = rescale(original), rescale(derived_ds)
    if (slope, intercept) == (d_slope, d_intercept):
        return derived
    modality = derived.astype(np.float64) * d_slope + d_intercept
    dtype = np.dtype(f"{'i' if int(original.PixelRepresentation) else 'u'}{derived.itemsize}")
    return np.rint((modality - intercept) / slope).astype(dtype)


def _cannot_compare(path: Path, name: str, exc: BaseException | str) -> InvalidInput:
    """The error for a file that cannot be compared, naming it as output does (its key)."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InvalidInput(f"{name}: {name_by_key(reason, path, name)}")


def _name(path: Path, ds: Any, show_paths: bool) -> str:
    """How output names a file: its path with --show-paths, else its file key."""
    if show_paths:
        return str(path)
    return file_key(path, str(ds.get("SOPInstanceUID") or "") if ds is not None else None)


def _related(original: Any, derived: Any) -> bool:
    """The same instance (lossless keeps the UID), or a derived one naming it as its source."""
    uid = original.get("SOPInstanceUID")
    if uid is None or derived.get("SOPInstanceUID") == uid:
        return True
    sources = derived.get("SourceImageSequence") or []
    return any(item.get("ReferencedSOPInstanceUID") == uid for item in sources)


def _gate(name: str | None) -> Gate | None:
    from dcmtier.measure.gates import DEFAULT_GATES, LOSSLESS_GATE

    if name is None:
        return None
    return LOSSLESS_GATE if name == LOSSLESS else DEFAULT_GATES[name]


def run(args: argparse.Namespace) -> int:
    from dcmtier.measure.metrics import ModalityLUT, iter_frame_metrics

    read = []
    for path in (args.original, args.derived):
        try:  # any failure to read or decode an input ends in one line naming the file
            read.append(_read_frames(path))
        except Exception as exc:
            raise _cannot_compare(path, _name(path, None, args.show_paths), exc) from exc
    (ds, original), (derived_ds, derived) = read
    names = (_name(args.original, ds, args.show_paths),
             _name(args.derived, derived_ds, args.show_paths))  # fmt: skip
    derived = _as_stored_values_of(ds, derived_ds, derived)
    if original.shape != derived.shape:
        raise _cannot_compare(
            args.derived, names[1],
            f"pixels {derived.shape} differ from the original's {original.shape}",
        )  # fmt: skip
    if not _related(ds, derived_ds):
        print(
            f"dcmtier quality: warning: {names[1]} does not derive from {names[0]}: "
            "different SOP Instance UID and no Source Image Sequence item referencing it",
            file=sys.stderr,
        )
    try:
        metrics = list(iter_frame_metrics(original, derived, ModalityLUT.from_dataset(ds)))
    except (AttributeError, ValueError) as exc:
        raise _cannot_compare(args.original, names[0], exc) from exc
    gate = _gate(args.gate)
    verdicts = [gate.check(m) if gate else None for m in metrics]
    if args.json:
        _print_json(args, names, metrics, verdicts)
    else:
        _print_table(args, names, metrics, verdicts)
    return 1 if any(verdicts) else 0


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _print_json(
    args: argparse.Namespace,
    names: tuple[str, str],
    metrics: list[FrameMetrics],
    verdicts: list[str | None],
) -> None:
    from dcmtier.cli import print_json

    for m, verdict in zip(metrics, verdicts, strict=True):
        row = {k: _finite_or_none(v) for k, v in m.as_dict().items()}
        row |= {"original": names[0], "derived": names[1]}
        if args.gate:
            row |= {"gate": args.gate, "violation": verdict}
        print_json(row)


def _print_table(
    args: argparse.Namespace,
    names: tuple[str, str],
    metrics: list[FrameMetrics],
    verdicts: list[str | None],
) -> None:
    from rich.console import Console
    from rich.table import Table

    first = metrics[0]
    # plain lines, so long paths wrap without splitting the unit and peak
    print(f"{names[1]}\n  vs {names[0]}")
    print(f"metrics in {first.unit}, PSNR peak {first.psnr_peak:g}; gates judge PSNR and SSIM")
    print("  against each frame's own range (its 0.1st-99.9th percentile span)")
    table = Table(
        "frame", "MSE", "PSNR dB", "SSIM", "match %", "max |diff|", "mean |diff|", "range",
        "PSNR dB (range)", "SSIM (range)",
    )  # fmt: skip
    if args.gate:
        table.add_column(f"gate {args.gate}")
    for m, verdict in zip(metrics, verdicts, strict=True):
        cells = [
            str(m.frame),
            f"{m.mse:.4g}",
            f"{m.psnr_db:.2f}",
            "n/a" if m.ssim is None else f"{m.ssim:.6f}",
            f"{m.pixel_match_pct:.2f}",
            f"{m.max_abs_diff:g}",
            f"{m.mean_abs_diff:.3f}",
            f"{m.data_range:g}",
            f"{m.psnr_db_range:.2f}",
            "n/a" if m.ssim_range is None else f"{m.ssim_range:.6f}",
        ]
        table.add_row(*cells, *([verdict or "pass"] if args.gate else []))
    Console().print(table)
