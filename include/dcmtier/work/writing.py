"""Write one output: build its dataset, write it beside its place, verify it, move it in.

An output is written piece by piece (`dcmtier.codec.part10`) where that gives pydicom's
bytes, else by pydicom; either way to a temporary file that replaces the target only once it
verified (`dcmtier.owner.replacing`), so a file that fails its check never appears under the
output's name. Outputs are named by UIDs only: ``DIR/<tier>/<Study>/<Series>/<SOP>.dcm``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import Dataset, dcmread

from dcmtier import owner
from dcmtier.codec import part10
from dcmtier.codec.backends import Encoded
from dcmtier.codec.derive import build_output, encapsulate_frames
from dcmtier.codec.pixels import SourceImage
from dcmtier.outputs import uid_name
from dcmtier.records import PER_TIER, TierResult
from dcmtier.tiers import Tier
from dcmtier.work.verify import Verified, Verify

ENCODER = part10.Encoder()  # this process's series x tier header templates

# what a run does with an object without pixel data: (path, tier, out_dir) -> its copy or None
PassThrough = Callable[[Path, Tier, Path], Path | None]


def output_path(out_dir: Path, tier: str, study: str, series: str, sop: str) -> Path:
    """``DIR/<tier>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` (UIDs only;
    a UID that cannot name a file is named by a hash of it, ``outputs.uid_name``)."""
    return out_dir / tier / uid_name(study) / uid_name(series) / f"{uid_name(sop)}.dcm"


def leave_out(path: Path, tier: Tier, out_dir: Path) -> Path | None:
    """An object without pixel data is skipped: nothing is written for it."""
    return None


def copy_through(path: Path, tier: Tier, out_dir: Path) -> Path | None:
    """An object without pixel data (SR, RTPLAN, KO...) is copied unchanged into the tier."""
    ds = dcmread(path)
    target = output_path(
        out_dir, tier.name, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return target


@dataclass
class Written:
    """An output written, verified and renamed into place."""

    target: Path
    dataset: Dataset
    verified: Verified


def write_output(
    source: SourceImage,
    header: Dataset,
    tier: Tier,
    encoded: list[Encoded],
    *,
    out_dir: Path,
    verify: Verify,
    result: TierResult,
) -> Written:
    """Build, write atomically and ``verify`` the output of ``encoded``; fill the result's
    sizes. Each step's time goes to ``result.steps_ms``."""
    started = time.perf_counter()
    ratio = source.pixel_bytes / sum(len(e.data) for e in encoded)
    frames = [e.data for e in encoded]
    out = build_output(
        header, encoded, tier, achieved_ratio=ratio, lossy_source=source.lossy_history,
        pixel_data=False,
    )  # fmt: skip
    part = None
    if part10.can_encode(out, frames):
        part = ENCODER.encode(out, frames, template=(source.series_uid, tier.name))
    else:
        encapsulate_frames(out, frames)  # pydicom writes it
    target = output_path(
        out_dir, tier.name, source.study_uid, source.series_uid, str(out.SOPInstanceUID)
    )
    steps = result.steps_ms
    steps["header"] = _ms_since(started)
    verified: list[Verified] = []
    check = lambda tmp: verified.append(verify(tmp, part, encoded, source, tier))  # noqa: E731
    started = time.perf_counter()
    if part is None:
        write_atomic(out, target, check=check, steps=steps)
    else:
        write_part_atomic(part, target, check=check, steps=steps)
    steps["write"] = round(_ms_since(started) - steps["verify"], 3)
    decode_ms = round(sum(verified[0].decode_ms), 3)
    steps["verify"] = round(steps["verify"] - decode_ms, 3)
    steps["decode"] = decode_ms
    result.verify_ms = round(steps["write"] + steps["verify"] + decode_ms, 3)
    result.decode_ms = decode_ms
    _fill_sizes(result, source, encoded, target, out, file_bytes=part.size if part else None)
    return Written(target, out, verified[0])


def write_atomic(
    ds: Dataset,
    target: Path,
    *,
    check: Callable[[Path], object] | None = None,
    steps: dict[str, float] | None = None,
) -> None:
    """Write ``ds`` to a temporary file beside ``target``, ``check`` it, then rename it.

    A file that fails its check never appears under ``target``'s name. The check's time goes
    to ``steps["verify"]`` when ``steps`` is given.
    """
    _atomic(lambda handle: ds.save_as(handle, enforce_file_format=True), target, check, steps)


def write_part_atomic(
    part: part10.Part10,
    target: Path,
    *,
    check: Callable[[Path], object] | None = None,
    steps: dict[str, float] | None = None,
) -> None:
    """`write_atomic` for a file encoded as pieces (`part10.Part10`): one write a piece, so
    the file is never whole in memory."""
    _atomic(lambda handle: handle.writelines(part.pieces()), target, check, steps)


def _atomic(
    write: Callable[[BinaryIO], object],
    target: Path,
    check: Callable[[Path], object] | None,
    steps: dict[str, float] | None,
) -> None:
    with owner.replacing(target) as temp:
        write(temp.file)
        temp.file.close()  # what is checked is the file as written
        owner.checkpoint("compress")
        started = time.perf_counter()
        if check is not None:
            check(temp.path)
        if steps is not None:
            steps["verify"] = _ms_since(started)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _fill_sizes(
    result: TierResult,
    source: SourceImage,
    encoded: list[Encoded],
    target: Path,
    out: Dataset,
    *,
    file_bytes: int | None = None,
) -> None:
    result.output = str(target)
    result.sop_instance_uid_out = str(out.SOPInstanceUID)
    result.pixel_bytes_out = sum(len(e.data) for e in encoded)
    result.pixel_ratio = round(source.pixel_bytes / result.pixel_bytes_out, 4)
    result.file_bytes_out = file_bytes if file_bytes is not None else target.stat().st_size
    result.file_ratio = round(source.file_bytes / result.file_bytes_out, 4)
    result.encodes = sum(e.encodes for e in encoded)
    result.params = {
        "strategy": PER_TIER,
        **encoded[0].params,
        "photometric_out": encoded[0].photometric,
        "bits_stored": encoded[0].bits_stored,
    }
    result.params.pop("packets", None)  # per frame; the Parquet rows and pixel ratios say it
    if source.widened:  # stored values above the header's Bits Stored, kept: say so
        result.params["bits_stored_declared"] = source.bits_declared
