"""The codec an instance gets in a tier that chooses (``maxerr20``, ``best-lossless``), and the
NEAR it gets in a JPEG-LS bound tier (``jls-maxerr20``).

A choosing tier codes the instance with each of its candidates and keeps the smallest output
whose every frame was decoded and seen to meet the tier's bound (lossless: bit-exact); ties go
to the earlier candidate in the tier's list (the faster decoder, `beats`). The policy may
leave some out (`dcmtier.codec.candidates`: e.g. JPEG XL, for viewers that cannot decode it).
Candidates:

- JPEG-LS near-lossless at the NEAR the bound allows (`dcmtier.work.nearlossless`): the bound
  holds by construction, and is checked all the same;
- JPEG XL at the same NEAR: values moved to a lattice of step 2 * NEAR + 1 and coded
  losslessly (`dcmtier.codec.backends.jpegxl.quantise`), each frame decoded and checked;
- HTJ2K at the largest quantisation step whose decoded frame meets the bound, per frame
  (doubling or halving from the previous frame's step, then three bisections), else reversible;
- JPEG 2000 searched per frame to the bound on its quality ladder (`dcmtier.work.targeting`),
  after one encode at the size left to beat has shown that it can pass (`_j2k_lost`), and not
  at all once HTJ2K, searched to the same bound, lost to the bar: at a max |diff| bound the
  JPEG 2000 search stored 1.03-1.06x HTJ2K's bytes on every series measured (bound 5, 20 and
  150 on the sample CT, 20 on the three of `tests/unit/work/frontier_cases.py`), and its one
  encode costs about a J2K lossless encode, a third of the 3x the choice may cost;
- for ``best-lossless``: each codec's lossless mode (JPEG XL at ``jxl-lossless``'s effort).

The likely smallest candidates run first (JPEG XL, then JPEG-LS); one whose bytes
pass the smallest complete candidate's stops early (it cannot win), and within a frame a
coding larger than what is left of that bar is not decoded: the searches treat it as passing
and look for a smaller one. Each frame's time is what every candidate spent on it, so the
output's encode time is the choice's whole cost.
A candidate the policy or codec refuses for this instance is left out and named in the
result; when none is left the tier is refused.

Memory is bounded by the object as in the rest of the work: each candidate reads the source's
frames one at a time (`SourceImage.iter_frames`: kept in memory for a small instance, read or
decoded again for a large one) and writes its codestreams to a temporary file
(`dcmtier.work.spool`), so what a candidate holds is one frame and its codings; only the
chosen candidate's codestreams are read back into memory, as any tier's output is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcmtier.codec import backends as codecs
from dcmtier.codec.backends import Encoded, htj2k, openjpeg
from dcmtier.codec.pixels import SourceImage
from dcmtier.codec.policy import PixelKind, Policy
from dcmtier.errors import CodecError, PolicyRefused, VerificationFailed, one_line
from dcmtier.measure.gates import gate_for
from dcmtier.measure.metrics import ModalityLUT
from dcmtier.tiers import HTJ2K, J2K, JLS, JXL, JXL_LOSSLESS_EFFORT, Codec, Tier
from dcmtier.work.nearlossless import (
    Frames,
    encode_near,
    jls_tier,
    jxl_tier,
    near_for,
    within_bound,
)
from dcmtier.work.spool import Spool
from dcmtier.work.targeting import FrameJudge, target_frame

TRY_ORDER = (JXL, JLS, HTJ2K, J2K)  # likely smallest first: it sets the bar early
HTJ2K_BISECTIONS = 3
HTJ2K_BRACKET = 12  # doublings or halvings before the step search gives up (then reversible)


@dataclass
class Chosen:
    """The output an instance gets: the tier as coded, its frames, what each candidate gave."""

    frames: Frames
    encode_ms: list[float]  # per frame, every candidate's time on it
    tried: dict[str, object] = field(default_factory=dict)  # codec: bytes, or why not

    @property
    def tier(self) -> Tier:
        return self.frames.tier


@dataclass
class _Instance:
    """One instance being coded for a choosing tier: what every candidate needs."""

    source: SourceImage
    tier: Tier
    lut: ModalityLUT
    policy: Policy
    cache: Path | None
    spent: list[float]  # per frame, every candidate's time on it

    def allow(self, tier: Tier) -> None:
        """Raise ``PolicyRefused`` when the policy or the codec refuses ``tier`` here."""
        source = self.source
        kind = PixelKind(source.spec.bits_allocated, source.dataset.PhotometricInterpretation)
        self.policy.check(tier, modality=source.modality, kind=kind)
        codecs.backend(tier.codec.label).check(source.dataset, source.spec, tier)

    def judge(self, tier: Tier, index: int, original: np.ndarray) -> FrameJudge:
        gate = gate_for(tier)
        assert gate is not None  # a bound tier's gate is its bound
        max_ratio = self.policy.max_ratio(self.source.modality)
        return FrameJudge(self.source, tier, index, original, gate, self.lut, max_ratio)


Candidate = Callable[[_Instance, Codec, int | None], Frames | None]


def code_near(source: SourceImage, tier: Tier, lut: ModalityLUT, policy: Policy) -> Chosen:
    """A JPEG-LS bound tier: NEAR from the bound and the slope, every frame checked."""
    near = near_for(tier, source, lut)
    coded = jls_tier(tier, near)
    task = _instance(source, tier, lut, policy, None)
    task.allow(coded)
    frames = encode_near(source, coded, within_bound(coded, lut))
    assert frames is not None  # no budget: never abandoned
    return Chosen(frames, frames.encode_ms, {"jls": frames.bytes})


def choose(
    source: SourceImage, tier: Tier, lut: ModalityLUT, policy: Policy, cache: Path | None
) -> Chosen:
    """The smallest of ``tier.candidates`` that the policy lets it try (its ``candidates``
    and ``viewers``) meeting its bound (or lossless) on every frame."""
    task = _instance(source, tier, lut, policy, cache)
    kind: Candidate = _lossless if tier.lossless else _bounded
    candidates = policy.candidates.for_tier(tier)
    best: Frames | None = None
    tried: dict[str, object] = {}
    failed = False
    for codec in (c for c in TRY_ORDER if c in candidates):
        budget = best.bytes if best is not None else None
        if codec is J2K and not tier.lossless and str(tried.get(HTJ2K.label)).startswith("over"):
            tried[codec.label] = f"not searched: HTJ2K lost to {budget} bytes"
            continue
        try:
            found = kind(task, codec, budget)  # spooled: on disk, not in memory
        except PolicyRefused as exc:
            tried[codec.label] = f"refused ({exc.rule})"
            continue
        except (CodecError, VerificationFailed) as exc:
            tried[codec.label], failed = f"failed: {one_line(exc)}", True
            continue
        if found is None:
            tried[codec.label] = f"over {budget} bytes"
            continue
        tried[codec.label] = found.bytes
        if best is None or beats(found, best, candidates):
            best, found = found, best
        if found is not None:
            found.close()  # lost: its temporary file goes at once
    if best is None:
        why = "; ".join(f"{label}: {what}" for label, what in tried.items())
        message = f"tier {tier.name}: no candidate codec gave an output ({why})"
        if failed:
            raise VerificationFailed(message)
        raise PolicyRefused(message, rule="choice:no-candidate")
    return Chosen(best.loaded(), [round(ms, 3) for ms in task.spent], tried)


def beats(found: Frames, best: Frames, candidates: tuple[Codec, ...]) -> bool:
    """True when ``found`` is smaller than ``best``, or as small and its codec comes first
    in ``candidates`` (the tier's order: the faster decoder)."""
    rank = {codec.label: i for i, codec in enumerate(candidates)}
    return (found.bytes, rank[found.tier.codec.label]) < (best.bytes, rank[best.tier.codec.label])


def code_with(
    source: SourceImage, tier: Tier, codec: Codec, lut: ModalityLUT, policy: Policy
) -> Frames:
    """Every frame by ``codec`` alone, as ``tier`` would try it (no bar): `bench.frontier`."""
    task = _instance(source, tier, lut, policy, None)
    found = (_lossless if tier.lossless else _bounded)(task, codec, None)
    assert found is not None  # no budget: never abandoned
    return found.loaded()


def _instance(
    source: SourceImage, tier: Tier, lut: ModalityLUT, policy: Policy, cache: Path | None
) -> _Instance:
    return _Instance(source, tier, lut, policy, cache, [0.0] * source.frames)


def _lossless(task: _Instance, codec: Codec, budget: int | None) -> Frames | None:
    """Every frame in ``codec``'s lossless mode, decoded and compared bit for bit."""
    effort = JXL_LOSSLESS_EFFORT if codec is JXL else None
    coded = task.tier.chosen(codec, effort=effort)
    task.allow(coded)
    backend = codecs.backend(codec.label)
    spec = task.source.spec
    out = Frames(coded, Spool(), [])
    for index, original in enumerate(task.source.iter_frames()):
        started = time.perf_counter()
        encoded = backend.encode(original, spec, coded)
        if budget is not None and out.bytes + len(encoded.data) > budget:
            _spend(task, out, index, encoded, started=started, budget=budget)
            out.close()
            return None  # lost already: not worth a decode
        decoded = backend.decode(encoded.data, spec).reshape(original.shape)
        if not np.array_equal(decoded, original):
            raise VerificationFailed(f"{codec.description} lossless frame {index} is not exact")
        _spend(task, out, index, encoded, started=started, budget=budget)
    return out


def _bounded(task: _Instance, codec: Codec, budget: int | None) -> Frames | None:
    """Every frame coded by ``codec`` to the tier's bound."""
    if codec in (JLS, JXL):
        return _near(task, codec, budget)
    coded = task.tier.chosen(codec)
    task.allow(coded)
    out = Frames(coded, Spool(), [])
    step: float | None = None
    for index, original in enumerate(task.source.iter_frames()):
        started = time.perf_counter()
        judge = task.judge(coded, index, original)
        judge.lost_above = None if budget is None else budget - out.bytes
        if codec is J2K and judge.lost_above is not None and _j2k_lost(judge, judge.lost_above):
            out.close()
            return None
        if codec is J2K:
            encoded = target_frame(judge, task.cache).encoded
        else:
            encoded, step = _htj2k_frame(judge, step)
        if not _spend(task, out, index, encoded, started=started, budget=budget):
            out.close()
            return None
    return out


def _near(task: _Instance, codec: Codec, budget: int | None) -> Frames | None:
    """Every frame coded by JPEG-LS or JPEG XL at the NEAR the bound allows."""
    near = near_for(task.tier, task.source, task.lut)
    coded = (jls_tier if codec is JLS else jxl_tier)(task.tier, near)
    task.allow(coded)
    check = within_bound(coded, task.lut)
    max_ratio = task.policy.max_ratio(task.source.modality)
    started = time.perf_counter()
    found = encode_near(task.source, coded, check, budget, spooled=True)
    spent = found.encode_ms if found is not None else []
    for index, ms in enumerate(spent):
        task.spent[index] += ms
    if found is None:
        task.spent[0] += (time.perf_counter() - started) * 1000  # an abandoned run's time
        return None
    pixel_bytes = task.source.spec.pixel_bytes
    if max_ratio is not None and any(pixel_bytes / size > max_ratio for size in found.sizes):
        found.close()
        raise PolicyRefused(
            f"{codec.description} NEAR {near} codes a frame above the modality's {max_ratio:g}:1",
            rule=f"modality:{task.source.modality}:max-ratio:{max_ratio:g}",
        )
    return found


def _j2k_lost(judge: FrameJudge, most: int) -> bool:
    """True when one JPEG 2000 encode at the bar's size fails the bound: the quality ladder's
    cuts of that size (its layers share the bytes) are assumed no better, so the search, which
    costs a ladder encode and several decodes, is left out."""
    if most <= 0:
        return True
    lost_above, judge.lost_above = judge.lost_above, None
    try:
        return not judge(openjpeg.encode_within(judge.original, judge.source.spec, most))
    finally:
        judge.lost_above = lost_above


def _spend(
    task: _Instance,
    out: Frames,
    index: int,
    encoded: Encoded,
    *,
    started: float,
    budget: int | None,
) -> bool:
    """Add a frame to ``out`` and its time to the instance's; False once over ``budget``."""
    ms = (time.perf_counter() - started) * 1000
    task.spent[index] += ms
    out.add(encoded, round(ms, 3))
    return budget is None or out.bytes <= budget


def _htj2k_frame(judge: FrameJudge, start: float | None) -> tuple[Encoded, float | None]:
    """The frame at the largest quantisation step meeting ``judge`` (reversible if none)."""
    frame, spec = judge.original, judge.source.spec
    tried: dict[float, Encoded | None] = {}

    def passing(step: float) -> Encoded | None:
        if step not in tried:
            encoded = htj2k.encode_step(frame, spec, step)
            tried[step] = encoded if judge(encoded.data) else None
        return tried[step]

    step = start or _first_step(judge)
    good, bad = (step, None) if passing(step) else (None, step)
    for _ in range(HTJ2K_BRACKET):
        if good is not None and bad is not None:
            break
        if good is not None:
            good, bad = (good * 2, None) if passing(good * 2) else (good, good * 2)
        else:
            assert bad is not None
            good, bad = (bad / 2, bad) if passing(bad / 2) else (None, bad / 2)
    if good is None:
        return htj2k.encode_step(frame, spec, None), start
    if bad is not None:
        for _ in range(HTJ2K_BISECTIONS):
            middle = (good * bad) ** 0.5
            good, bad = (middle, bad) if passing(middle) else (good, middle)
    found = tried[good]
    assert found is not None
    return found, good


def _first_step(judge: FrameJudge) -> float:
    """A first quantisation step: the bound in stored values over the coded range.

    OpenJPH's step is relative to the coded precision (the container's 8 or 16 bits); its
    largest error is about the step times that range (a guess: the search corrects it).
    """
    bound = judge.gate.max_abs_diff or 1.0
    stored = max(bound / abs(judge.lut.slope), 0.5)
    return stored / float(1 << (8 * judge.original.dtype.itemsize))
