"""The rate-distortion frontier of bound tiers (issue #27): each codec family alone, and the
codec-choosing tier, per bound, on one group of files, in this process.

For each bound (0: lossless; else max |diff| N in modality units) and each codec family, the
group is coded as a choosing tier would try that family (`dcmtier.work.choosing.code_with`:
JPEG 2000 searched on its quality ladder, HTJ2K on its quantisation step, JPEG-LS at the NEAR
the bound allows, JPEG XL lossless only), then the choosing tier itself (``best-lossless``,
``maxerr{N}``). Per row: pixel bytes, the largest |diff| and the RMSE over every pixel in
modality units, the mean SSIM over frames, the encode CPU ms (a search's or choice's decodes
and checks included) and the decode CPU ms of the frames kept, summed over the group, and the
encode's ratio to J2K lossless's. CPU time (``time.process_time``, the codecs run on one
thread here) rather than wall time, so that other work on the machine does not skew the
ratios.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dcmtier.codec import backends as codecs
from dcmtier.codec.pixels import SourceImage, read_source
from dcmtier.codec.policy import Policy
from dcmtier.errors import DcmtierError, one_line
from dcmtier.measure.metrics import ModalityLUT, frame_metrics
from dcmtier.tiers import HTJ2K, J2K, JLS, JXL, Bound, Codec, Tier, get_tier
from dcmtier.work import choosing

BOUNDS = (0, 5, 20, 150)
LOSSLESS_FAMILIES = (J2K, HTJ2K, JLS, JXL)
BOUND_FAMILIES = (J2K, HTJ2K, JLS, JXL)
CHOSEN_LABEL = "chosen"


@dataclass
class _Row:
    """One family (or the choice) at one bound, summed over the group."""

    bytes: int = 0
    pixels: int = 0
    squares: float = 0.0
    max_abs_diff: float = 0.0
    ssim_sum: float = 0.0
    ssim_frames: int = 0
    encode_ms: float = 0.0
    decode_ms: float = 0.0
    chosen: dict[str, int] | None = None
    error: str | None = None

    def as_dict(self, baseline_ms: float) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        return {
            "bytes": self.bytes,
            "max_abs_diff": self.max_abs_diff,
            "rmse": round(math.sqrt(self.squares / max(self.pixels, 1)), 4),
            "ssim": round(self.ssim_sum / self.ssim_frames, 6) if self.ssim_frames else None,
            "encode_ms": round(self.encode_ms, 1),
            "decode_ms": round(self.decode_ms, 1),
            "encode_vs_j2k_lossless": round(self.encode_ms / baseline_ms, 2)
            if baseline_ms
            else None,
            **({"chosen": self.chosen} if self.chosen is not None else {}),
        }


def bound_tier(bound: int) -> Tier:
    """``best-lossless`` at 0, else ``maxerr20`` with the bound N: the choosing tier for it."""
    if bound == 0:
        return get_tier("best-lossless")
    return replace(get_tier("maxerr20"), name=f"maxerr{bound}", bound=Bound(float(bound)))


def measure_frontier(
    files: Sequence[Path], echo: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """``{"bounds": {bound: {family: row}}, "files": n}`` for one group of files."""
    sources = [read_source(path) for path in files]
    rows: dict[int, dict[str, _Row]] = {}
    for bound in BOUNDS:
        tier = bound_tier(bound)
        families = LOSSLESS_FAMILIES if bound == 0 else BOUND_FAMILIES
        rows[bound] = {c.label: _family(sources, tier, c) for c in families}
        rows[bound][CHOSEN_LABEL] = _chosen(sources, tier)
        echo(f"bound {bound}: " + ", ".join(f"{k} {v.bytes}" for k, v in rows[bound].items()))
    baseline = rows[0]["j2k"].encode_ms
    return {
        "files": len(sources),
        "bounds": {
            str(bound): {label: row.as_dict(baseline) for label, row in by.items()}
            for bound, by in rows.items()
        },
    }


def _family(sources: Sequence[SourceImage], tier: Tier, codec: Codec) -> _Row:
    row = _Row()
    try:
        for source in sources:
            lut = _lut(source)
            started = time.process_time()
            frames = choosing.code_with(source, tier, codec, lut, Policy(modality_rules={}))
            row.encode_ms += (time.process_time() - started) * 1000
            _add(row, source, frames.tier, frames.encoded, lut)
    except DcmtierError as exc:  # refused or failed for one file: the row says so
        return _Row(error=one_line(exc))
    return row


def _chosen(sources: Sequence[SourceImage], tier: Tier) -> _Row:
    row = _Row(chosen={})
    try:
        for source in sources:
            lut = _lut(source)
            started = time.process_time()
            chosen = choosing.choose(source, tier, lut, Policy(modality_rules={}), None)
            row.encode_ms += (time.process_time() - started) * 1000
            _add(row, source, chosen.tier, chosen.frames.encoded, lut)
            label = chosen.tier.codec.label
            assert row.chosen is not None
            row.chosen[label] = row.chosen.get(label, 0) + 1
    except DcmtierError as exc:
        return _Row(error=one_line(exc))
    return row


def _add(
    row: _Row,
    source: SourceImage,
    tier: Tier,
    encoded: Sequence[codecs.Encoded],
    lut: ModalityLUT,
) -> None:
    backend = codecs.backend(tier.codec.label)
    for index, (frame, original) in enumerate(zip(encoded, source.iter_frames(), strict=True)):
        started = time.process_time()
        decoded = backend.decode(frame.data, source.spec).reshape(original.shape)
        row.decode_ms += (time.process_time() - started) * 1000
        metrics = frame_metrics(original, decoded, lut, index)
        row.bytes += len(frame.data)
        row.pixels += original.size
        row.squares += metrics.mse * original.size
        row.max_abs_diff = max(row.max_abs_diff, metrics.max_abs_diff)
        if metrics.ssim is not None:
            row.ssim_sum += metrics.ssim
            row.ssim_frames += 1


def _lut(source: SourceImage) -> ModalityLUT:
    return ModalityLUT.from_dataset(source.dataset, bits_stored=source.spec.bits_stored)


def format_table(name: str, result: dict[str, Any]) -> list[str]:
    """The rows of one group as aligned text lines."""
    header = (
        f"{'bound':>6} {'codec':<8} {'bytes':>10} {'max|diff|':>9} {'RMSE':>8} {'SSIM':>8} "
        f"{'enc CPU ms':>10} {'dec CPU ms':>10} {'enc/J2K':>7}  chosen"
    )
    lines = [f"{name} ({result['files']} files)", header]
    for bound, by in result["bounds"].items():
        for label, row in by.items():
            if "error" in row:
                lines.append(f"{bound:>6} {label:<8} {row['error']}")
                continue
            ssim = f"{row['ssim']:.4f}" if row["ssim"] is not None else "-"
            chosen = ", ".join(f"{k} {v}" for k, v in row.get("chosen", {}).items())
            lines.append(
                f"{bound:>6} {label:<8} {row['bytes']:>10} {row['max_abs_diff']:>9g} "
                f"{row['rmse']:>8.3f} {ssim:>8} {row['encode_ms']:>10.1f} "
                f"{row['decode_ms']:>10.1f} {row['encode_vs_j2k_lossless'] or 0:>7.2f}  {chosen}"
            )
    return lines
