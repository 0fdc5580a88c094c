"""Coding a frame at the highest ratio whose decoded frame meets a gate.

Two users: the quality-targeted tiers (``j2k-maxerr20``...), whose every frame is coded this
way, and the ``fallback`` action of ``on_gate_failure``, which recodes a frame that broke its
rate tier's gate. JPEG 2000 searches one layered codestream: bisect over its quality layers for
the first (most compressed) layer that meets the gate, then refine between that layer and the
one before by keeping only the first packets of the last layer (``Layers.cut``). Every
candidate is decoded and measured, so the frame returned is one that was seen to pass; the
search assumes quality grows with the layer, and a non-monotone frame may get a slightly
lower ratio than the best, never a failing one. When even all the coded data fails (a gate
tighter than the irreversible coder's precision), the frame is coded reversibly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dcmtier.codec import backends as codecs
from dcmtier.codec.backends import Encoded
from dcmtier.codec.backends.layered import Layers
from dcmtier.codec.layering import LADDER, ladder_layers, layered_frame
from dcmtier.codec.pixels import SourceImage
from dcmtier.errors import CodecError
from dcmtier.measure.datarange import Span, frame_span
from dcmtier.measure.gates import Gate
from dcmtier.measure.metrics import ModalityLUT, frame_metrics
from dcmtier.records import PER_TIER
from dcmtier.tiers import Tier

Judge = Callable[[bytes], bool]


@dataclass
class Found:
    """The frame chosen, how many candidates were decoded, and the time the search took."""

    encoded: Encoded
    decodes: int
    encode_ms: float  # the ladder's encode (when this search made it), decodes and measures


@dataclass
class FrameJudge:
    """Decodes a candidate codestream of one frame and checks it against the gate.

    The original's data range, which the gate's PSNR and SSIM limits are judged against, is
    measured once for all the candidates.
    """

    source: SourceImage
    tier: Tier
    index: int
    original: np.ndarray
    gate: Gate
    lut: ModalityLUT
    max_ratio: float | None = None  # the modality's lossy limit, from the policy
    decodes: int = 0
    # a codec-choosing tier's bar (`dcmtier.work.choosing`): a candidate larger than this has
    # lost already, so it counts as passing without a decode and the search moves on to
    # smaller ones; the caller sees the size of what is found and drops it
    lost_above: int | None = None
    span: Span = field(init=False)  # the original's data range, in modality units

    def __post_init__(self) -> None:
        self.span = frame_span(self.original, self.lut.slope, self.lut.intercept)

    def __call__(self, data: bytes) -> bool:
        spec = self.source.spec
        if self.max_ratio is not None and spec.pixel_bytes / len(data) > self.max_ratio:
            return False
        if self.lost_above is not None and len(data) > self.lost_above:
            return True
        self.decodes += 1
        try:
            decoded = codecs.backend(self.tier.codec.label).decode(data, spec)
        except CodecError:
            return False
        if decoded.size != self.original.size:
            return False
        metrics = frame_metrics(
            self.original, decoded.reshape(spec.shape), self.lut, self.index,
            with_ssim=self.gate.min_ssim is not None, span=self.span,
        )  # fmt: skip
        return self.gate.check(metrics) is None


def search_layers(layers: Layers, judge: Judge, *, first: int = 1) -> tuple[int, int] | None:
    """(layer, packets) of the most compressed cut from layer ``first`` on that passes.

    Layers ``first``..``count`` are bisected for the first passing layer k; then the packets of
    layer k are bisected (keeping layer k - 1 whole), starting with all but the last. None when
    not even the whole codestream passes.
    """
    low, high = first - 1, layers.count  # low: fails (or is before first); high: passes
    while high - low > 1:
        middle = (low + high) // 2
        if judge(layers.cut(middle)):
            high = middle
        else:
            low = middle
    if high == layers.count and not judge(layers.cut(high)):  # assumed until now
        return None
    if high == 1:  # nothing before the first layer to refine from
        return high, layers.packets_per_layer
    fewest, most = 0, layers.packets_per_layer  # 0 packets decodes as layer k - 1: failed
    # the last packet (the finest resolution) holds most of a layer's bytes, so the largest
    # proper prefix is tried first: when it fails, so do the shorter ones (one decode)
    if most > 1 and not judge(layers.cut(high, most - 1)):
        return high, most
    most -= 1
    while most - fewest > 1:
        middle = (fewest + most) // 2
        if judge(layers.cut(high, middle)):
            most = middle
        else:
            fewest = middle
    return high, most


def target_frame(judge: FrameJudge, cache: Path | None, *, below: float | None = None) -> Found:
    """The frame at the highest ratio meeting ``judge``'s gate, from the quality ladder.

    ``below``: only layers whose target ratio is under it (a fallback from a rate tier).
    """
    started = time.perf_counter()
    source = judge.source
    layers, _ = ladder_layers(source, judge.index, judge.original, cache)
    first = 1 if below is None else next(
        (i for i, t in enumerate(layers.targets, 1) if t < below), layers.count
    )  # fmt: skip
    found = search_layers(layers, judge, first=first)
    if found is None:
        encoded = reversible(source, judge.tier, judge.original)
    else:
        layer, packets = found
        encoded = layered_frame(
            source, layers, layers.cut(layer, packets), layer, packets=packets,
            ladder=True,
        )  # fmt: skip
    return Found(encoded, judge.decodes, (time.perf_counter() - started) * 1000)


def fall_back(
    judge: FrameJudge, cache: Path | None, rate_layers: Layers | None, layer: int
) -> Found:
    """Recode a frame that broke its gate at the highest ratio meeting it.

    J2K: first the longer cuts of the frame's own layered codestream (no new encode), else the
    quality ladder below the tier's rate. Other codecs: lower rates from the ladder, each a new
    encode, else the codec's lossless mode.
    """
    started = time.perf_counter()
    tier, source = judge.tier, judge.source
    if tier.codec.label != "j2k":
        encoded = _lower_rates(judge)
        return Found(encoded, judge.decodes, (time.perf_counter() - started) * 1000)
    if rate_layers is not None and layer < rate_layers.count:
        found = search_layers(rate_layers, judge, first=layer + 1)
        if found is not None:
            at, packets = found
            data = rate_layers.cut(at, packets)
            encoded = layered_frame(source, rate_layers, data, at, shared=False, packets=packets)
            return Found(encoded, judge.decodes, (time.perf_counter() - started) * 1000)
    return target_frame(judge, cache, below=tier.target_ratio)


def _lower_rates(judge: FrameJudge) -> Encoded:
    """Bisect the ladder's rates below the tier's, one encode each; else lossless."""
    tier, source = judge.tier, judge.source
    backend = codecs.backend(tier.codec.label)
    ratios = [t for t in LADDER[:-1] if tier.target_ratio is None or t < tier.target_ratio]
    tried: dict[int, Encoded | None] = {}

    def passing(i: int) -> Encoded | None:
        if i not in tried:
            candidate = backend.encode(
                judge.original, source.spec, replace(tier, target_ratio=ratios[i])
            )
            tried[i] = candidate if judge(candidate.data) else None
        return tried[i]

    low, high = -1, len(ratios)  # ratios[high] passes (len: none known yet)
    while high - low > 1:
        middle = (low + high) // 2
        if passing(middle) is not None:
            high = middle
        else:
            low = middle
    if high < len(ratios) and (found := passing(high)) is not None:
        return found
    return reversible(source, tier, judge.original)


def reversible(source: SourceImage, tier: Tier, frame: np.ndarray) -> Encoded:
    """The codec's lossless coding of ``frame`` (the tier's transfer syntax allows it)."""
    backend = codecs.backend(tier.codec.label)
    lossless = replace(tier, target_ratio=None, near=0, bound=None)
    encoded = backend.encode(frame, source.spec, lossless)
    return Encoded(
        encoded.data, encoded.photometric, encoded.bits_stored, encoded.encodes,
        {**encoded.params, "strategy": PER_TIER, "reversible": True},
    )  # fmt: skip
