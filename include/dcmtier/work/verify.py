"""Verify a written output by decoding it: the frames must be those of the source.

Lossless must be bit-exact and JPEG-LS near-lossless within NEAR; any tier must decode to the
source's frame count and shape; a recompressed frame must rebuild the source's codestream
byte for byte. Two ways to get at the frames, one function each (`Verify`):

- `in_memory` (the default): the file's bytes are compared, piece by piece, with the pieces
  written (`dcmtier.codec.part10`), and the codestreams decoded from memory. Equal bytes are
  the same dataset, transfer syntax and frames, so the file needs no second parse. An output pydicom
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.encaps import generate_frames

from dcmtier.codec import backends as codecs
from dcmtier.codec import pixels
from dcmtier.codec.backends import Encoded
from dcmtier.codec.part10 import Part10
from dcmtier.codec.pixels import SourceImage
from dcmtier.errors import VerificationFailed
from dcmtier.tiers import Tier


@dataclass
class Verified:
    """The decoded frames of a written output, with each frame's decode time in ms.

    ``frames`` can be iterated more than once: a list where the instance is small enough to
    keep its decoded frames (`keeps_frames`), else `Redecoded`, which decodes each frame
    again as it is wanted, so a large instance is never whole in memory a second time.
    """

    frames: Sequence[np.ndarray] | Redecoded
    decode_ms: list[float]


class Redecoded:
    """The frames of codestreams held in memory, decoded again on each pass (or, for a
    recompressing codec, the source's own frames, which they rebuild)."""

    def __init__(self, frames: Callable[[], Iterator[np.ndarray]], count: int) -> None:
        self._frames, self._count = frames, count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._frames()


def keeps_frames(source: SourceImage) -> bool:
    """True when an output's decoded frames are kept for its metrics: as the source keeps
    its own (`dcmtier.codec.pixels.CACHE_LIMIT`)."""
    return source.pixel_bytes * 2 <= pixels.CACHE_LIMIT


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
    _compare_file(path, part)
    if keeps_frames(source):
        return _check_decoded(_decode(source, tier, (e.data for e in encoded)), source, tier)
    return _check_streamed(source, tier, encoded)


def _compare_file(path: Path, part: Part10) -> None:
    """The file at ``path`` must hold ``part``'s bytes: read and compared a piece at a time."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        same = size == part.size and all(handle.read(len(p)) == p for p in part.pieces())
    if not same:
        raise VerificationFailed(
            f"written output: the file's {size} bytes differ from the {part.size} written"
        )


def _check_decoded(decoded: Verified, source: SourceImage, tier: Tier) -> Verified:
    if len(decoded.frames) != source.frames:
        raise VerificationFailed(
            f"written output: {len(decoded.frames)} frames decoded, {source.frames} written"
        )
    if codecs.backend(tier.codec.label).recompresses:
        _compare_codestreams(decoded.frames, source)
        # the same codestream decodes to the same pixels: the source's frames are the output's
        decoded.frames = (
            list(source.iter_frames())
            if keeps_frames(source)
            else Redecoded(source.iter_frames, source.frames)
        )
        return decoded
    for index, (got, want) in enumerate(zip(decoded.frames, source.iter_frames(), strict=True)):
        _compare(index, got, want, tier)
    return decoded


def _check_streamed(source: SourceImage, tier: Tier, encoded: list[Encoded]) -> Verified:
    """`_check_decoded` a frame at a time, keeping none: each codestream decoded and compared
    with the source's frame, then dropped; the metrics decode it again (`Redecoded`)."""
    if len(encoded) != source.frames:
        raise VerificationFailed(
            f"written output: {len(encoded)} frames decoded, {source.frames} written"
        )
    times: list[float] = []
    decoded = _decoded(source, tier, (e.data for e in encoded), times)
    if codecs.backend(tier.codec.label).recompresses:
        _compare_codestreams(decoded, source)
        return Verified(Redecoded(source.iter_frames, source.frames), times)
    for index, (got, want) in enumerate(zip(decoded, source.iter_frames(), strict=True)):
        _compare(index, got, want, tier)
    again = Redecoded(lambda: _decoded(source, tier, (e.data for e in encoded)), len(encoded))
    return Verified(again, times)


def _compare_codestreams(decoded: Iterable[np.ndarray], source: SourceImage) -> None:
    """A recompressed frame must give back the source's codestream byte for byte."""
    for index, (got, want) in enumerate(zip(decoded, source.codestreams(), strict=True)):
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
    times: list[float] = []
    return Verified(list(_decoded(source, tier, codestreams, times)), times)


def _decoded(
    source: SourceImage,
    tier: Tier,
    codestreams: Iterable[bytes],
    times: list[float] | None = None,
) -> Iterator[np.ndarray]:
    """Each codestream decoded by the tier's codec in the source's frame shape, one at a
    time; each decode's ms appended to ``times`` when given."""
    backend = codecs.backend(tier.codec.label)
    shape = source.spec.shape
    try:
        for data in codestreams:
            started = time.perf_counter()
            frame = backend.decode(data, source.spec)
            if times is not None:
                times.append(round((time.perf_counter() - started) * 1000, 3))
            yield frame.reshape(shape) if frame.size == math.prod(shape) else frame
    except Exception as exc:
        raise VerificationFailed(f"written output does not decode: {exc}") from exc


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
