"""The ``layered`` strategy: J2K rate tiers cut from one layered encode per frame.

For one source instance, the requested J2K rate tiers become the quality layers of a single
encode per frame (``codec.backends.layered``); each tier's frames are cuts of it. With a cache
folder, the layered codestreams are kept per instance, so the tier tasks of a study (one per
tier in the DAG) share one encode, and a retried tier task cuts again instead of encoding.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcmtier.codec.backends import Encoded
from dcmtier.codec.backends.layered import Layers, encode_layers, parse
from dcmtier.codec.pixels import SourceImage
from dcmtier.errors import CodecError
from dcmtier.outputs import uid_name
from dcmtier.records import LAYERED
from dcmtier.tiers import Tier, layered_tiers

CACHE_VERSION = "1"


@dataclass(frozen=True)
class Cut:
    """One tier's frames, cut from the layered codestreams, and the time they cost."""

    frames: list[Encoded]
    encode_ms: list[float]


def cut_tiers(
    source: SourceImage, tiers: Sequence[Tier], cache: Path | None = None
) -> dict[str, Cut]:
    """Encode (or load) the layered codestreams of ``source`` and cut one set per tier.

    Encode time is shared: each tier is charged its share of the layered encode plus its cut.
    """
    ordered = layered_tiers(tiers)
    if len(ordered) < 2:
        return {}
    targets = tuple(float(t.target_ratio or 0) for t in ordered)
    per_frame: list[tuple[Layers, float]] = []
    for index, frame in enumerate(source.iter_frames()):
        per_frame.append(_layers(source, index, frame, targets, cache))
    cuts: dict[str, Cut] = {}
    for layer, tier in enumerate(ordered, 1):
        frames, times = [], []
        for layers, encode_ms in per_frame:
            started = time.perf_counter()
            data = layers.cut(layer)
            cut_ms = (time.perf_counter() - started) * 1000
            frames.append(_encoded(source, layers, data, layer, tier))
            times.append(round(encode_ms / len(ordered) + cut_ms, 3))
        cuts[tier.name] = Cut(frames, times)
    return cuts


def _encoded(source: SourceImage, layers: Layers, data: bytes, layer: int, tier: Tier) -> Encoded:
    colour = source.spec.samples == 3
    return Encoded(
        data=data,
        photometric="YBR_ICT" if colour else source.spec.photometric,
        bits_stored=source.spec.bits_stored,
        encodes=layers.encodes if layer == 1 else 0,  # count the shared encode once
        params={"strategy": LAYERED, "layer": layer, "layers": layers.count},
    )


def _layers(
    source: SourceImage,
    index: int,
    frame: np.ndarray,
    targets: tuple[float, ...],
    cache: Path | None,
) -> tuple[Layers, float]:
    path = _cache_path(cache, source, index, targets) if cache else None
    if path is not None and path.is_file():
        try:
            return parse(path.read_bytes(), targets, encodes=0), 0.0  # no encode: a cut
        except CodecError:
            path.unlink(missing_ok=True)  # a damaged cache entry: encode again
    started = time.perf_counter()
    layers = encode_layers(frame, source.spec, targets)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
