"""Quality gates: measure each decoded frame against its source, and what a broken gate does.

`measure` fills a result's per-frame metrics and returns the frames that broke the tier's
gate; `unmeasured` is the choice not to measure (``dcmtier compress`` without
``--on-gate-failure``). The policy's ``on_gate_failure`` then says what happens to an output
with broken frames: `keep` it flagged, `reject` it (removed), or fall back
(`fall_back_frames`: those frames re-encoded until they pass, the output written again by its
caller, then `record_fallback`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from dcmtier.codec.backends import Encoded
from dcmtier.codec.layering import Cut
from dcmtier.codec.pixels import SourceImage
from dcmtier.codec.policy import FALLBACK, KEEP, REJECT
from dcmtier.measure.gates import gate_for
from dcmtier.measure.metrics import ModalityLUT, frame_metrics
from dcmtier.records import GATE_FAILED, REJECTED, TierResult
from dcmtier.tiers import Tier
from dcmtier.work.targeting import FrameJudge, fall_back
from dcmtier.work.verify import Verified


class Measure(Protocol):
    """`measure` or `unmeasured`: the broken frames of an output, each with its rule."""

    def __call__(
        self,
        result: TierResult,
        *,
        source: SourceImage,
        tier: Tier,
        encoded: list[Encoded],
        encode_ms: list[float],
        verified: Verified,
        lut: ModalityLUT,
    ) -> dict[int, str]: ...


def measure(
    result: TierResult,
    *,
    source: SourceImage,
    tier: Tier,
    encoded: list[Encoded],
    encode_ms: list[float],
    verified: Verified,
    lut: ModalityLUT,
) -> dict[int, str]:
    """Fill ``result.frame_metrics`` (docs/concepts/metrics.md), check the tier's quality gate.

    The originals are the values as stored in the file (``SourceImage.iter_frames``). Returns
    the frames that broke the gate, with the rule each broke; what happens to them is the
    policy's ``on_gate_failure``.
    """
    gate = gate_for(tier)
    broken: dict[int, str] = {}
    for index, (original, decoded) in enumerate(
        zip(source.iter_frames(), verified.frames, strict=True)
    ):
        metrics = frame_metrics(original, decoded, lut, index)
        rule = gate.check(metrics) if gate is not None else None
        result.frame_metrics.append(
            {
                **metrics.as_dict(),
                "pixel_bytes_in": source.spec.pixel_bytes,
                "pixel_bytes_out": len(encoded[index].data),
                "encode_ms": encode_ms[index],
                "decode_ms": verified.decode_ms[index],
                "gate": rule,
                "gate_action": None,
                "fell_back": False,
            }
        )
        if rule:
            broken[index] = rule
    return broken


def unmeasured(
    result: TierResult,
    *,
    source: SourceImage,
    tier: Tier,
    encoded: list[Encoded],
    encode_ms: list[float],
    verified: Verified,
    lut: ModalityLUT,
) -> dict[int, str]:
    """No metrics and no gate: verification alone decides (lossless outputs exactly)."""
    return {}


def keep(result: TierResult, broken: dict[int, str], tier: Tier) -> None:
    """The output stays, flagged ``gate_failed``."""
    first = min(broken)
    result.status, result.gate = GATE_FAILED, f"{tier.use.value} gate: {broken[first]}"
    result.reason = f"{result.source}: frame {first} broke the {result.gate}; kept (keep)"
    _mark(result, broken, KEEP)


def reject(result: TierResult, broken: dict[int, str], tier: Tier, target: Path) -> None:
    """The output at ``target`` is removed and the result ``rejected``."""
    first = min(broken)
    target.unlink(missing_ok=True)
    result.status, result.gate = REJECTED, f"{tier.use.value} gate: {broken[first]}"
    result.reason = f"{result.source}: frame {first} broke the {result.gate}; output rejected"
    result.output = None
    _mark(result, broken, REJECT)


def fall_back_frames(
    broken: dict[int, str],
    frames: tuple[list[Encoded], list[float]],
    judge: Callable[[int], FrameJudge],
    cut: Cut | None,
    layer_cache: Path | None,
) -> None:
    """Re-encode each broken frame in place (``frames``: encoded, encode ms) until it passes;
    ``judge(index)`` judges frame ``index`` against the tier's gate."""
    encoded, encode_ms = frames
    for index in sorted(broken):
        rate_layers = cut.layers[index] if cut is not None and cut.layers else None
        found = fall_back(judge(index), layer_cache, rate_layers, cut.layer if cut else 0)
        encoded[index] = found.encoded
        encode_ms[index] = round(encode_ms[index] + found.encode_ms, 3)


def record_fallback(result: TierResult, broken: dict[int, str]) -> None:
    """Say, on the result measured again, which frames fell back and why."""
    result.fallback_frames = len(broken)
    for index, rule in broken.items():
        result.frame_metrics[index].update(gate=rule, gate_action=FALLBACK, fell_back=True)


def _mark(result: TierResult, broken: dict[int, str], action: str) -> None:
    for index in broken:
        result.frame_metrics[index]["gate_action"] = action
