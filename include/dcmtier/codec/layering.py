"""The ``layered`` strategy: J2K rate tiers cut from one layered encode per frame.

For one source instance, the requested J2K rate tiers become the quality layers of a single
encode per frame (``codec.backends.layered``); each tier's frames are cuts of it. With a cache
folder, the layered codestreams are kept per instance, so the tier tasks of a study (one per
tier in the DAG) share one encode, and a retried tier task cuts again instead of encoding.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcmtier import owner
from dcmtier.codec.backends import Encoded
from dcmtier.codec.backends.layered import Layers, encode_layers, parse
from dcmtier.codec.pixels import SourceImage
from dcmtier.errors import CodecError
from dcmtier.outputs import uid_name
from dcmtier.records import LAYERED
from dcmtier.tiers import Tier, layered_tiers

CACHE_VERSION = "1"


# The quality ladder: layer targets (pixel ratios) of the encode that quality-targeted tiers
# and gate fallbacks search. 400:1 down to 2:1 in steps of 1.2x, then a last layer holding all
# the coded data (ratio 1: no rate limit, the irreversible coder's best, within a few units of
# the source). A cut between two layers (``Layers.cut(k, packets)``) refines further.
LADDER_STEP = 1.2
LADDER: tuple[float, ...] = (
    *(round(400.0 / LADDER_STEP**i, 3) for i in range(30)),
    1.0,
)


@dataclass(frozen=True)
class Cut:
    """One tier's frames, cut from the layered codestreams, and the time they cost.

    ``layers`` are the frames' layered codestreams and ``layer`` the (1-based) layer the tier
    was cut at, so that a frame breaking its gate can fall back to a longer cut.
    """

    frames: list[Encoded]
    encode_ms: list[float]
    layers: tuple[Layers, ...] = ()
    layer: int = 0


def cut_tiers(
    source: SourceImage,
    tiers: Sequence[Tier],
    cache: Path | None = None,
    *,
    only: Collection[str] | None = None,
) -> dict[str, Cut]:
    """Encode (or load) the layered codestreams of ``source`` and cut one set per tier.

    Encode time is shared: each tier is charged its share of the layered encode plus its cut.
    With ``only``, just those tiers are cut (the layers are still those of ``tiers``): a tier
    task cuts its own tier, not every tier of the run.
    """
    ordered = layered_tiers(tiers)
    if len(ordered) < 2 or (only is not None and not any(t.name in only for t in ordered)):
        return {}
    targets = tuple(float(t.target_ratio or 0) for t in ordered)
    per_frame: list[tuple[Layers, float]] = []
    for index, frame in enumerate(source.iter_frames()):
        per_frame.append(_layers(source, index, frame, targets, cache))
    cuts: dict[str, Cut] = {}
    for layer, tier in enumerate(ordered, 1):
        if only is not None and tier.name not in only:
            continue
        frames, times = [], []
        for layers, encode_ms in per_frame:
            started = time.perf_counter()
            data = layers.cut(layer)
            cut_ms = (time.perf_counter() - started) * 1000
            frames.append(layered_frame(source, layers, data, layer, shared=layer == 1))
            times.append(round(encode_ms / len(ordered) + cut_ms, 3))
        cuts[tier.name] = Cut(frames, times, tuple(lay for lay, _ in per_frame), layer)
    return cuts


def ladder_targets(bits_stored: int, bits_allocated: int) -> tuple[float, ...]:
    """``LADDER`` without the layers OpenJPEG cannot tell apart at this precision.

    OpenJPEG's ratios are relative to Bits Stored and at least 1, so a pixel ratio whose
    nominal ratio falls to 1 or below would repeat the last layer.
    """
    scale = bits_stored / bits_allocated
    return (*(t for t in LADDER[:-1] if t * scale > 1.0), LADDER[-1])


def ladder_layers(
    source: SourceImage, index: int, frame: np.ndarray, cache: Path | None = None
) -> tuple[Layers, float]:
    """The quality ladder of one frame (encoded once; kept under ``cache`` when given), and
    the milliseconds its encode took (0 when read from the cache)."""
    targets = ladder_targets(source.spec.bits_stored, source.spec.bits_allocated)
    return _layers(source, index, frame, targets, cache, correct=False)


def layered_frame(
    source: SourceImage, layers: Layers, data: bytes, layer: int, *, shared: bool = True,
    **params: object,
) -> Encoded:  # fmt: skip
    """``data``, a cut of ``layers`` at ``layer``, as an encoded frame of ``source``.

    ``shared`` counts the layered encode for this frame (once among the tiers that cut it).
    """
    colour = source.spec.samples == 3
    return Encoded(
        data=data,
        photometric="YBR_ICT" if colour else source.spec.photometric,
        bits_stored=source.spec.bits_stored,
        encodes=layers.encodes if shared else 0,
        params={"strategy": LAYERED, "layer": layer, "layers": layers.count, **params},
    )


def _layers(
    source: SourceImage,
    index: int,
    frame: np.ndarray,
    targets: tuple[float, ...],
    cache: Path | None,
    *,
    correct: bool = True,
) -> tuple[Layers, float]:
    path = _cache_path(cache, source, index, targets) if cache else None
    if path is not None:
        try:
            return parse(path.read_bytes(), targets, encodes=0), 0.0  # no encode: a cut
        except FileNotFoundError:
            pass  # not cached, or pruned (`dcmtier cache prune`): encode
        except CodecError:
            path.unlink(missing_ok=True)  # a damaged cache entry: encode again
    started = time.perf_counter()
    layers = encode_layers(frame, source.spec, targets, correct=correct)
    encode_ms = (time.perf_counter() - started) * 1000
    if path is not None:
        _write(path, layers.data)
    return layers, encode_ms


def _cache_path(cache: Path, source: SourceImage, index: int, targets: tuple[float, ...]) -> Path:
    key = json.dumps([CACHE_VERSION, targets, source.spec.bits_stored, source.file_bytes])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return (
        cache / uid_name(source.study_uid) / f"{uid_name(source.sop_uid)}.{digest}.{index:05d}.j2c"
    )


def _write(path: Path, data: bytes) -> None:
    try:
        with owner.replacing(path) as temp:  # a killed process's temporary file is swept
            temp.file.write(data)
    except FileNotFoundError:  # the study's cache was pruned meanwhile: the next task encodes
        return
