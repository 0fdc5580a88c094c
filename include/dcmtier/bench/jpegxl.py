"""JPEG XL lossless beside JPEG 2000 lossless: ratio and encoder speed per effort level.

The figures behind ``jxl-lossless``'s effort (docs/concepts/jpeg-xl.md): every frame of a
set of files is encoded by the codec backends dcmtier uses (``openjpeg`` for ``j2k-lossless``,
``jpegxl`` for ``jxl-lossless`` at each effort), one process, one thread, and each codestream
decoded again and compared (a size is only reported for a lossless round trip). Ratio = stored pixel
bytes / codestream bytes of the whole set; MB/s = stored pixel MB / encoder seconds (median
over ``runs``).

``python -m dcmtier.bench.jpegxl FILE_OR_FOLDER ... [--efforts 3 7] [--runs N]`` prints one
line per codec and effort for each file given (a folder: its ``*.dcm`` files, each on its own)
and for all of them together: the tables of docs/concepts/jpeg-xl.md come from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcmtier.bench.timing import MB
from dcmtier.codec import backends
from dcmtier.codec.pixels import read_source
from dcmtier.errors import DcmtierError
from dcmtier.tiers import Tier, get_tier

EFFORTS = (1, 2, 3, 5, 7, 9)
BENCH_EFFORTS = (1, 3, 7)  # in ``dcmtier bench``: 9 takes ~1 s a 512x512 frame
BENCH_FILES = 20  # per variant of the bench's study, in ``dcmtier bench``
# Real scanner images bundled with pydicom's wheel (its test data): a CT and an MR.
REAL_FILES = ("CT_small.dcm", "MR_small.dcm")


def real_files() -> list[Path]:
    """pydicom's bundled scanner images that are present in this installation."""
    from pydicom.data import get_testdata_file

    found = (get_testdata_file(name) for name in REAL_FILES)
    return [Path(str(path)) for path in found if path is not None]


def compare(
    files: Sequence[Path], *, runs: int = 1, efforts: Sequence[int] = EFFORTS
) -> dict[str, Any]:
    """``j2k-lossless`` and ``jxl-lossless`` at each effort on every frame of ``files``."""
    frames, spec_of = _frames(files)
    stored = sum(spec_of[i].pixel_bytes for i in range(len(frames)))
    candidates: list[tuple[str, Tier]] = [("j2k-lossless", get_tier("j2k-lossless"))]
    jxl = get_tier("jxl-lossless")
    candidates += [(f"jxl effort {e}", dataclasses.replace(jxl, effort=e)) for e in efforts]
    rows: dict[str, Any] = {}
    for name, tier in candidates:
        size, seconds = _measure(frames, spec_of, tier, runs)
        rows[name] = {
            "effort": tier.effort,
            "ratio": round(stored / size, 4),
            "bytes": size,
            "encode_mb_s": round(stored / MB / seconds, 2),
        }
    reference = rows["j2k-lossless"]["bytes"]
    for row in rows.values():
        row["bytes_vs_j2k"] = round(row["bytes"] / reference, 4)
    return {"files": len(files), "frames": len(frames), "stored_bytes": stored, "codecs": rows}


def _frames(files: Sequence[Path]) -> tuple[list[np.ndarray], dict[int, backends.FrameSpec]]:
    frames: list[np.ndarray] = []
    spec_of: dict[int, backends.FrameSpec] = {}
    for path in files:
        source = read_source(path)
        for frame in source.iter_frames():
            spec_of[len(frames)] = source.spec
            frames.append(frame)
    return frames, spec_of


def _measure(
    frames: Sequence[np.ndarray], spec_of: dict[int, backends.FrameSpec], tier: Tier, runs: int
) -> tuple[int, float]:
    backend = backends.backend(tier.codec.label)
    times: list[float] = []
    size = 0
    for _ in range(max(1, runs)):
        size, elapsed = 0, 0.0
        for index, frame in enumerate(frames):
            spec = spec_of[index]
            started = time.perf_counter()
            encoded = backend.encode(frame, spec, tier)
            elapsed += time.perf_counter() - started
            if not np.array_equal(backend.decode(encoded.data, spec).reshape(frame.shape), frame):
                raise DcmtierError(f"{tier.name} effort {tier.effort}: frame {index} not lossless")
            size += len(encoded.data)
        times.append(elapsed)
    return size, statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dcmtier.bench.jpegxl", description=__doc__)
    parser.add_argument("paths", type=Path, nargs="+", metavar="FILE_OR_FOLDER")
    parser.add_argument("--efforts", type=int, nargs="+", default=list(BENCH_EFFORTS))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON object per set")
    args = parser.parse_args(argv)
    files: list[Path] = []
    for path in args.paths:
        files += sorted(path.glob("*.dcm")) if path.is_dir() else [path]
    sets = [(str(f), [f]) for f in files] + ([("all", files)] if len(files) > 1 else [])
    failed = 0
    for name, chosen in sets:
        try:
            result = compare(chosen, runs=args.runs, efforts=args.efforts)
        except Exception as exc:  # a file the backends refuse: say so, go on with the others
            print(f"{name}: not measured: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps({"set": name, **result}, sort_keys=True))
            continue
        print(f"{name}: {result['frames']} frames, {result['stored_bytes']} stored bytes")
        for codec, row in result["codecs"].items():
            print(f"  {codec:14s} ratio {row['ratio']:8.3f}  x J2K bytes {row['bytes_vs_j2k']:.3f}"
                  f"  {row['encode_mb_s']:7.2f} MB/s")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
