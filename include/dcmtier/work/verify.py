"""Verify a written output by decoding it: the frames must be those of the source.

Lossless must be bit-exact and JPEG-LS near-lossless within NEAR; any tier must decode to the
source's frame count and shape; a recompressed frame must rebuild the source's codestream
byte for byte. Two ways to get at the frames, one function each (`Verify`):

- `in_memory` (the default): the file's bytes are compared with the buffer written
  (`dcmtier.codec.part10`), and the codestreams decoded from memory. Equal bytes are the same
  dataset, transfer syntax and frames, so the file needs no second parse. An output pydicom
  wrote (no buffer) is read back.
- `read_back`: the written file is parsed with pydicom and each frame decoded from it.

Either way each frame's codestream is decoded by the codec's own library (pydicom's pixel
pipeline is tested against the same outputs, with GDCM and OpenJPEG's tools besides; going
direct saves its per-frame overhead, and HTJ2K decodes with OpenJPH, 1.5 ms a 512x512 frame
against OpenJPEG's 3.4 ms).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.encaps import generate_frames

from dcmtier.codec import backends as codecs
from dcmtier.codec.backends import Encoded
from dcmtier.codec.part10 import Part10
from dcmtier.codec.pixels import SourceImage
from dcmtier.errors import VerificationFailed
from dcmtier.tiers import Tier


@dataclass
class Verified:
    """The decoded frames of a written output, with each frame's decode time in ms."""

    frames: list[np.ndarray]
    decode_ms: list[float]


# (written file, the buffer written or None where pydicom wrote it, frames, source, tier)
Verify = Callable[[Path, Part10 | None, list[Encoded], SourceImage, Tier], Verified]


def in_memory(
    path: Path, part: Part10 | None, encoded: list[Encoded], source: SourceImage, tier: Tier
) -> Verified:
    """`verify_buffer` for an output written from a buffer, else `verify_file`."""
    if part is None:
        return verify_file(path, source, tier)
    return verify_buffer(path, part, encoded, source, tier)


def read_back(
    path: Path, part: Part10 | None, encoded: list[Encoded], source: SourceImage, tier: Tier
) -> Verified:
    """`verify_file`, however the output was written."""
    return verify_file(path, source, tier)


def verify_file(path: Path, source: SourceImage, tier: Tier) -> Verified:
    """Read the written file back, decode every frame and compare it with the source.

    Returns the decoded frames (for quality metrics).
    """
    return _check_decoded(_decode_written(path, source, tier), source, tier)


def verify_buffer(
    path: Path, part: Part10, encoded: list[Encoded], source: SourceImage, tier: Tier
) -> Verified:
    """Check that the file at ``path`` holds exactly ``part``'s bytes, decode the codestreams
    from memory and compare them with the source, as `verify_file` does from the parsed file.
    """
    written = path.read_bytes()
    if written != part.data:
        raise VerificationFailed(
            f"written output: the file's {len(written)} bytes differ from the {len(part.data)} "
            "written"
        )
    return _check_decoded(_decode(source, tier, (e.data for e in encoded)), source, tier)


def _check_decoded(decoded: Verified, source: SourceImage, tier: Tier) -> Verified:
    if len(decoded.frames) != source.frames:
        raise VerificationFailed(
            f"written output: {len(decoded.frames)} frames decoded, {source.frames} written"
        )
    if codecs.backend(tier.codec.label).recompresses:
        _compare_codestreams(decoded, source)
        # the same codestream decodes to the same pixels: the source's frames are the output's
        decoded.frames = list(source.iter_frames())
        return decoded
    for index, (got, want) in enumerate(zip(decoded.frames, source.iter_frames(), strict=True)):
        _compare(index, got, want, tier)
    return decoded


def _compare_codestreams(decoded: Verified, source: SourceImage) -> None:
    """A recompressed frame must give back the source's codestream byte for byte."""
    for index, (got, want) in enumerate(zip(decoded.frames, source.codestreams(), strict=True)):
        if got.tobytes() != want:
            raise VerificationFailed(
                f"written output, frame {index}: the rebuilt codestream ({got.size} bytes) differs "
                f"from the source's ({len(want)} bytes)"
            )


def _decode_written(path: Path, source: SourceImage, tier: Tier) -> Verified:
    try:
        ds = dcmread(path)
        syntax = str(ds.file_meta.TransferSyntaxUID)
        if syntax != tier.transfer_syntax:
            raise VerificationFailed(
                f"written output: transfer syntax {syntax}, not {tier.transfer_syntax}"
            )
        frames = int(ds.get("NumberOfFrames") or 1)
        extended = None
        if "ExtendedOffsetTable" in ds:
            extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        codestreams = generate_frames(
            ds.PixelData, number_of_frames=frames, extended_offsets=extended
        )
    except VerificationFailed:
        raise
    except Exception as exc:
        raise VerificationFailed(f"written output does not decode: {exc}") from exc
    return _decode(source, tier, codestreams)


def _decode(source: SourceImage, tier: Tier, codestreams: Iterable[bytes]) -> Verified:
    """Each codestream decoded by the tier's codec, timed, in the source's frame shape."""
    backend = codecs.backend(tier.codec.label)
    shape = source.spec.shape
    out = Verified([], [])
    try:
        for data in codestreams:
            started = time.perf_counter()
            frame = backend.decode(data, source.spec)
            out.decode_ms.append(round((time.perf_counter() - started) * 1000, 3))
            out.frames.append(frame.reshape(shape) if frame.size == math.prod(shape) else frame)
    except Exception as exc:
        raise VerificationFailed(f"written output does not decode: {exc}") from exc
    return out


def _compare(index: int, got: np.ndarray, want: np.ndarray, tier: Tier) -> None:
    where = f"written output, frame {index}"
    if got.shape != want.shape:
        raise VerificationFailed(f"{where}: decoded shape {got.shape}, source {want.shape}")
    if np.array_equal(got, want) or (tier.near == 0 and not tier.lossless):
        return  # a rate or bound tier's frames are measured against its gate instead
    err = int(np.max(np.abs(got.astype(np.int32) - want.astype(np.int32)), initial=0))
    if err > tier.near:
        kind = "lossless" if tier.lossless else f"NEAR={tier.near}"
        raise VerificationFailed(f"{where}: {kind} output differs from source by up to {err}")
