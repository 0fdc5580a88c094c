"""Quality-targeted tiers against fixed rates (issue #15), on one study, in this process.

For each quality-targeted tier: its bytes against those of the smallest fixed-rate J2K tier
whose every frame meets the same bound (the twelve rate tiers as the layered strategy makes
them: cuts of one layered encode), and its CPU time (the ladder encode plus the search's
decodes and measures) against that one layered encode. Goal: <= 0.8x the bytes at <= 2x the
CPU. CPU is ``time.process_time`` of this process, one frame at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcmtier.codec import backends as codecs
from dcmtier.codec.backends import FrameSpec
from dcmtier.codec.layering import cut_tiers
from dcmtier.codec.pixels import read_source
from dcmtier.discovery.files import find_files
from dcmtier.errors import ConfigError
from dcmtier.measure.gates import Gate, gate_for
from dcmtier.measure.metrics import ModalityLUT, frame_metrics
from dcmtier.tiers import J2K_RATES, TIERS, Tier, get_tier
from dcmtier.work.targeting import FrameJudge, target_frame

BYTES_GOAL, CPU_GOAL = 0.8, 2.0
QUALITY_TIERS = tuple(name for name, tier in TIERS.items() if tier.bound is not None)


@dataclass
class _Tally:
    """What the study added up to, frame by frame."""

    rates: list[Tier]
    quality: list[Tier]
    rate_bytes: dict[str, int] = field(default_factory=dict)
    meets: dict[tuple[str, str], bool] = field(default_factory=dict)
    ours: dict[str, dict[str, Any]] = field(default_factory=dict)
    layered_cpu: float = 0.0
    frames: int = 0

    def __post_init__(self) -> None:
        self.rate_bytes = {t.name: 0 for t in self.rates}
        self.meets = {(q.name, t.name): True for q in self.quality for t in self.rates}
        self.ours = {q.name: {"bytes": 0, "cpu_s": 0.0, "decodes": 0} for q in self.quality}


def measure_quality(
    files: Sequence[Path], echo: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """``results.json``'s ``quality_tiers``: bytes and CPU of each quality-targeted tier."""
    tally = _Tally(
        [get_tier(f"j2k-r{n}") for n in J2K_RATES], [get_tier(name) for name in QUALITY_TIERS]
    )
    for path in files:
        source = read_source(path)
        started = time.process_time()
        cuts = cut_tiers(source, tally.rates)
        tally.layered_cpu += time.process_time() - started
        lut = ModalityLUT.from_dataset(source.dataset)
        for index, frame in enumerate(source.iter_frames()):
            tally.frames += 1
            for tier in tally.rates:
                data = cuts[tier.name].frames[index].data
                _fixed(tally, tier, data, spec=source.spec, frame=frame, lut=lut, index=index)
            for q in tally.quality:
                _target(tally.ours[q.name], FrameJudge(source, q, index, frame, _gate(q), lut))
        echo(f"quality tiers: {path.name} done")
    return _summary(tally)


def _gate(tier: Tier) -> Gate:
    gate = gate_for(tier)
    if gate is None:  # pragma: no cover - a quality-targeted tier always has its bound
        raise ConfigError(f"tier {tier.name} has no gate")
    return gate


def _fixed(
    tally: _Tally, tier: Tier, data: bytes, *, spec: FrameSpec, frame: Any, lut: ModalityLUT,
    index: int,
) -> None:  # fmt: skip
    """Count a fixed-rate frame's bytes and whether it meets each quality tier's bound."""
    tally.rate_bytes[tier.name] += len(data)
    decoded = codecs.backend("j2k").decode(data, spec).reshape(frame.shape)
    metrics = frame_metrics(frame, decoded, lut, index)
    for q in tally.quality:
        if _gate(q).check(metrics) is not None:
            tally.meets[q.name, tier.name] = False


def _target(into: dict[str, Any], judge: FrameJudge) -> None:
    started = time.process_time()
    found = target_frame(judge, None)
    into["cpu_s"] += time.process_time() - started
    into["bytes"] += len(found.encoded.data)
    into["decodes"] += found.decodes


def _summary(tally: _Tally) -> dict[str, Any]:
    tiers: dict[str, Any] = {}
    for q in tally.quality:
        meeting = [t.name for t in tally.rates if tally.meets[q.name, t.name]]
        best = min(meeting, key=lambda name: tally.rate_bytes[name], default=None)
        mine = tally.ours[q.name]
        ratio = mine["bytes"] / tally.rate_bytes[best] if best else None
        cpu = mine["cpu_s"] / tally.layered_cpu if tally.layered_cpu else None
        tiers[q.name] = {
            "bytes": mine["bytes"],
            "best_fixed_rate": best,
            "best_fixed_rate_bytes": tally.rate_bytes[best] if best else None,
            "bytes_factor": ratio,
            "cpu_s": round(mine["cpu_s"], 3),
            "cpu_factor": cpu,
            "decodes_per_frame": mine["decodes"] / tally.frames if tally.frames else None,
            "bytes_met": ratio is not None and ratio <= BYTES_GOAL,
            "cpu_met": cpu is not None and cpu <= CPU_GOAL,
        }
    return {
        "measured": True,
        "frames": tally.frames,
        "method": (
            "fixed rates: the 12 J2K rate tiers cut from one layered encode per frame (the "
            "layered strategy); CPU: process time of that encode against the quality tier's "
            "ladder encode, decodes and measures, one frame at a time"
        ),
        "layered_encode_cpu_s": round(tally.layered_cpu, 3),
        "rate_bytes": tally.rate_bytes,
        "goal": {"bytes_factor": BYTES_GOAL, "cpu_factor": CPU_GOAL},
        "tiers": tiers,
    }


def measure_folder(folder: Path, echo: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """`measure_quality` over every DICOM file under ``folder``."""
    return measure_quality(find_files([folder]), echo)
