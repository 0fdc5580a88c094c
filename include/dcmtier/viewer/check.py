"""Each tier as the web viewers see it: a sample of frames decoded by each viewer's codec.

A frame is decodable by a viewer when its codec returns without an error an image of the
header's size, samples, precision (8-bit or 16-bit samples as Bits Allocated says) and sign
(OpenJPH, given a codestream it cannot read, can return an empty image without an error).
A lossless tier is bit-exact for a viewer when every sampled frame's samples equal dcmtier's
own decode of the file (pydicom with pylibjpeg, pyjpegls and imagecodecs); ``max_abs_diff``
is against the source, in the modality's unit (HU for CT), when the catalogue knows where the
source is. Times: the codec's decode inside Node (median and 95th percentile per frame); the
download is the study's ZIP package at 100 Mbit/s and 1 Gbit/s; display is the download plus
decoding every frame of the study at the median time. The study behind the size and display
figures is the one whose package is the median of those checked.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dcmtier.outputs import uid_name
from dcmtier.tiers import TIERS
from dcmtier.viewer.listing import (
    StudyTier,
    catalogue_url,
    list_outputs,
    median_study,
    source_locations,
)
from dcmtier.viewer.node import Decoded, FrameRequest, NodeDecoder
from dcmtier.viewer.routing import VIEWERS, codec_for

BITS_PER_S = {"100mbps": 100e6, "1gbps": 1e9}


@dataclass(frozen=True)
class CheckOptions:
    """What to check: which tiers (all found when empty), how many studies per tier (among
    ``study_uids`` when given), at most how many frames per study (None: all), and the
    catalogue that knows the sources."""

    tiers: tuple[str, ...] = ()
    studies: int = 3
    frames: int | None = None
    catalogue: str | None = None
    study_uids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Frame:
    """One sampled frame: the header fields that judge a decode, and the values to compare."""

    request: FrameRequest
    transfer_syntax: str
    shape: tuple[int, int, int]  # rows, columns, samples
    reference: NDArray[Any]  # dcmtier's decode, flat
    rescale: tuple[float, float]  # slope, intercept of the derived file
    source: NDArray[np.float64] | None  # the source frame in modality units, flat


@dataclass(frozen=True)
class Delivery:
    """The median study of a tier's checked ones: its ZIP's size and its frame count."""

    studies: int  # how many were checked
    package_bytes: int | None
    study_frames: int


@dataclass
class Tally:
    """What one viewer made of one tier's sampled frames."""

    syntaxes: set[str] = field(default_factory=set)
    codecs: set[str] = field(default_factory=set)
    frames: int = 0
    decodable: int = 0
    exact: int = 0
    ms: list[float] = field(default_factory=list)
    max_abs_diff: float | None = None
    compared: int = 0  # frames compared with their source
    errors: list[str] = field(default_factory=list)

    def add(self, frame: Frame, codec: str | None, result: Decoded | str) -> None:
        self.frames += 1
        self.syntaxes.add(frame.transfer_syntax)
        if codec is not None:
            self.codecs.add(codec)
        problem = result if isinstance(result, str) else judge(result, frame)
        if problem is not None:
            self.errors.append(problem)
            return
        assert isinstance(result, Decoded)
        self.decodable += 1
        self.ms.append(result.ms)
        values = result.pixels.astype(np.int64)
        self.exact += int(np.array_equal(values, frame.reference.astype(np.int64)))
        if frame.source is not None:
            slope, intercept = frame.rescale
            diff = float(np.max(np.abs(values * slope + intercept - frame.source), initial=0.0))
            self.compared += 1
            self.max_abs_diff = max(self.max_abs_diff or 0.0, diff)


def judge(decoded: Decoded, frame: Frame) -> str | None:
    """Why a decode that raised nothing is still not the image the header describes."""
    rows, columns, samples = frame.shape
    got = (decoded.rows, decoded.columns, decoded.components)
    if got != frame.shape:
        return f"decoded {got[0]}x{got[1]}x{got[2]}, the header says {rows}x{columns}x{samples}"
    wide = frame.request.bits_allocated > 8
    if (decoded.bits > 8) != wide or decoded.bits > frame.request.bits_allocated:
        return (
            f"decoded {decoded.bits}-bit samples, the header says Bits Allocated "
            f"{frame.request.bits_allocated}"
        )
    if decoded.pixels.size != rows * columns * samples:
        return f"decoded {decoded.pixels.size} samples, {rows * columns * samples} expected"
    if samples == 1 and (decoded.pixels.dtype.kind == "i") != (
        frame.request.pixel_representation == 1
    ):
        sign = "signed" if decoded.pixels.dtype.kind == "i" else "unsigned"
        return f"decoded {sign} samples, Pixel Representation {frame.request.pixel_representation}"
    return None


def check(root: str, options: CheckOptions) -> Iterator[dict[str, Any]]:
    """One row per (tier, viewer) under ``root``, tier by tier as each is done."""
    only = {uid_name(uid) for uid in options.study_uids}  # their folders' names
    found = list_outputs(root, options.tiers, options.studies, only)
    if not found:  # nothing to decode: Node.js is not needed
        return
    url = catalogue_url(root, options.catalogue)
    with NodeDecoder() as node:
        versions = node.versions()
        warm: set[tuple[str, str]] = set()
        for tier in dict.fromkeys(s.tier for s in found):
            studies = [s for s in found if s.tier == tier]
            tallies = {viewer: Tally() for viewer in VIEWERS}
            study_frames: dict[str, int] = {}
            for study in studies:
                study_frames[study.study], frames = sample_frames(study, options.frames, url)
                for frame in frames:
                    for viewer, tally in tallies.items():
                        codec = codec_for(viewer, frame.transfer_syntax)
                        tally.add(frame, codec, _decode_warm(node, viewer, codec, frame, warm))
            middle = median_study(studies)
            delivery = Delivery(
                studies=len(studies),
                package_bytes=middle.package_bytes if middle is not None else None,
                study_frames=study_frames[middle.study] if middle is not None else 0,
            )
            for viewer, tally in tallies.items():
                yield row(tier, viewer, tally, versions.get(viewer, {}), delivery)


def _decode_warm(
    node: NodeDecoder, viewer: str, codec: str | None, frame: Frame, warm: set[tuple[str, str]]
) -> Decoded | str:
    """The frame as the viewer decodes it; the first frame of each codec is decoded twice and
    the second timed, so that a time is the codec's work, not loading it or warming it up."""
    if codec is None:
        return f"no decoder for transfer syntax {frame.transfer_syntax}"
    if (viewer, codec) not in warm:
        warm.add((viewer, codec))
        node.decode(viewer, codec, frame.request)
    return node.decode(viewer, codec, frame.request)


def row(
    tier: str, viewer: str, tally: Tally, versions: dict[str, str], delivery: Delivery
) -> dict[str, Any]:
    """The (tier, viewer) row ``dcmtier viewer-check --json`` prints."""
    known = TIERS.get(tier)
    lossless = known.lossless if known is not None else None
    decodable = tally.frames > 0 and tally.decodable == tally.frames
    median_ms = statistics.median(tally.ms) if tally.ms else None
    package, frames_in_study = delivery.package_bytes, delivery.study_frames
    out: dict[str, Any] = {
        "tier": tier,
        "viewer": viewer,
        "transfer_syntax": " ".join(sorted(tally.syntaxes)) or None,
        "codec": " ".join(sorted(versions.get(c, c) for c in tally.codecs)) or None,
        "lossless": lossless,
        "decodable": decodable,
        "bit_exact": (decodable and tally.exact == tally.frames) if lossless else None,
        "max_abs_diff": tally.max_abs_diff if decodable and tally.compared else None,
        "frames": tally.frames,
        "frames_decodable": tally.decodable,
        "decode_ms_median": _round(median_ms),
        "decode_ms_p95": _round(float(np.percentile(tally.ms, 95)) if tally.ms else None),
        "studies": delivery.studies,
        "study_frames": frames_in_study,
        "package_bytes": package,
        "error": tally.errors[0] if tally.errors else None,
    }
    for speed, bits_per_s in BITS_PER_S.items():
        download = package * 8 / bits_per_s if package is not None else None
        out[f"download_s_{speed}"] = _round(download, 4)
        shown = None
        if download is not None and median_ms is not None and decodable:
            shown = download + frames_in_study * median_ms / 1000
        out[f"display_s_{speed}"] = _round(shown, 4)
    return out


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def sample_frames(
    study: StudyTier, limit: int | None, catalogue: str | None
) -> tuple[int, Iterator[Frame]]:
    """The study's frame count, and up to ``limit`` of its frames (spread evenly; all when
    None), decoded file by file as they are taken (a study's decoded frames are never held
    all at once)."""
    from dcmtier.storage.access import read_bytes

    datasets = [_read(read_bytes(location)) for location in study.files]
    counts = [int(ds.get("NumberOfFrames") or 1) for ds in datasets]
    total = sum(counts)
    picks = range(total) if limit is None or limit >= total else _spread(total, limit)
    wanted: dict[int, list[int]] = {}
    for index in picks:
        file, at = _locate(counts, index)
        wanted.setdefault(file, []).append(at)
    sources = _sources(catalogue, [_source_uid(datasets[i]) for i in wanted])

    def frames() -> Iterator[Frame]:
        for file, indices in wanted.items():
            ds = datasets[file]
            yield from _frames(ds, indices, sources(_source_uid(ds)))

    return total, frames()


def _spread(total: int, limit: int) -> list[int]:
    return sorted({round(i * (total - 1) / max(limit - 1, 1)) for i in range(limit)})


def _locate(counts: Sequence[int], index: int) -> tuple[int, int]:
    for file, count in enumerate(counts):
        if index < count:
            return file, index
        index -= count
    raise IndexError(index)


def _read(data: bytes) -> Any:
    import pydicom

    return pydicom.dcmread(io.BytesIO(data))


def _source_uid(ds: Any) -> str:
    """The source's SOP Instance UID: the one a lossy copy references, else the file's own."""
    for item in ds.get("SourceImageSequence") or []:
        if item.get("ReferencedSOPInstanceUID"):
            return str(item.ReferencedSOPInstanceUID)
    return str(ds.SOPInstanceUID)


def _sources(url: str | None, uids: Sequence[str]) -> Callable[[str], list[NDArray[np.float64]]]:
    """A lookup: source UID -> its frames in modality units (empty when not found)."""
    from dcmtier.storage.access import read_bytes

    where = source_locations(url, uids) if url else {}

    def frames_of(uid: str) -> list[NDArray[np.float64]]:
        location = where.get(uid)
        if location is None:
            return []
        ds = _read(read_bytes(location))
        slope, intercept = _rescale(ds)
        return [f.astype(np.float64) * slope + intercept for f in _decode(ds)]

    return frames_of


def _decode(ds: Any) -> list[NDArray[Any]]:
    from dcmtier.codec import syntaxes
    from dcmtier.codec.decoding import iter_decoded, jpeg_xl_as_decodable

    syntaxes.register()
    return list(iter_decoded(jpeg_xl_as_decodable(ds)))


def _rescale(ds: Any) -> tuple[float, float]:
    return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)


def _frames(ds: Any, indices: Sequence[int], source: list[NDArray[np.float64]]) -> list[Frame]:
    from pydicom.encaps import generate_frames

    count = int(ds.get("NumberOfFrames") or 1)
    codestreams = list(generate_frames(ds.PixelData, number_of_frames=count))
    syntax = str(ds.file_meta.TransferSyntaxUID)  # before decoding: a JPEG XL copy's changes
    reference = _decode(ds)
    shape = (int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel") or 1))
    request = {
        "pixel_representation": int(ds.PixelRepresentation),
        "bits_allocated": int(ds.BitsAllocated),
        "bits_stored": int(ds.BitsStored),
    }
    return [
        Frame(
            request=FrameRequest(codestream=codestreams[i], **request),
            transfer_syntax=syntax,
            shape=shape,
            reference=reference[i].reshape(-1),
            rescale=_rescale(ds),
            source=source[i].reshape(-1) if i < len(source) else None,
        )
        for i in indices
    ]
