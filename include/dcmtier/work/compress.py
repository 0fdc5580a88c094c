"""Compress one source file into every requested tier: the per-file orchestration.

For each tier: the policy's and the codec's refusals (`dcmtier.codec.backends.Backend.check`),
the encode (per tier, cut from one layered encode, or searched to a quality bound), the
output written and verified (`dcmtier.work.writing`, `dcmtier.work.verify`), then measured
and its gate applied (`dcmtier.work.gating`).

Each (source, tier) ends as one ``TierResult``: ``ok``, ``skipped``, ``refused`` or ``failed``,
with a one-line reason; nothing is dropped silently. Results and reasons name the source by its
file key (SOP Instance UID, else a content hash), never by its path, which may carry a patient
name. Any error about one file (its header, its modality LUT, a codec surprise) fails that file
alone; only environment errors (``OSError``: a full disk, an unwritable output) propagate, since
every other file would meet them too.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from dcmtier.codec import backends as codecs
from dcmtier.codec.backends import Backend, Encoded, FrameSpec
from dcmtier.codec.layering import Cut, cut_tiers
from dcmtier.codec.pixels import SourceImage, read_source
from dcmtier.codec.policy import KEEP, REJECT, PixelKind, Policy
from dcmtier.descriptors import series_descriptors
from dcmtier.errors import (
    DcmtierError,
    InvalidInput,
    NoPixelData,
    PolicyRefused,
    VerificationFailed,
    one_line,
)
from dcmtier.measure.gates import gate_for
from dcmtier.measure.metrics import ModalityLUT
from dcmtier.records import (
    FAILED,
    LAYERED,
    OK,
    PER_TIER,
    REFUSED,
    SKIPPED,
    TierResult,
    file_key,
    name_by_key,
)
from dcmtier.tiers import Tier
from dcmtier.work import choosing, gating, peak
from dcmtier.work.gating import Measure
from dcmtier.work.sources import SourceIndex, cached_source, release
from dcmtier.work.targeting import FrameJudge, target_frame
from dcmtier.work.verify import Verify, in_memory
from dcmtier.work.writing import PassThrough, Written, leave_out, write_output


@dataclass(frozen=True)
class CompressConfig:
    """How a batch of files is compressed: made once at the edge (``dcmtier compress``, a
    benchmark) or by ``process_study`` from its ``RunConfig``, then passed down as it is.

    What differs between runs in behaviour is a function, chosen here: how outputs are
    verified (`dcmtier.work.verify`), whether they are measured and gated
    (`dcmtier.work.gating`), what becomes of objects without pixel data
    (`dcmtier.work.writing`).
    """

    out_dir: Path
    policy: Policy = field(default_factory=Policy)
    strategy: str = PER_TIER  # or LAYERED: J2K rate tiers cut from one layered encode
    layer_tiers: tuple[Tier, ...] = ()  # the run's J2K rate tiers, when wider than ``tiers``
    layer_cache: Path | None = None  # keep layered codestreams here, shared by tier tasks
    verify: Verify = in_memory  # or verify.read_back: parse the written file with pydicom
    measure: Measure = gating.unmeasured  # or gating.measure: metrics, and the tier's gate
    no_pixels: PassThrough = leave_out  # or writing.copy_through
    # the study's sources as its encode task read them (`dcmtier.work.sources`): each source
    # it holds is taken from there instead of being read and parsed again
    sources: SourceIndex | None = None


@dataclass(frozen=True)
class _TierWork:
    """One source into one tier: what each step of it needs."""

    source: SourceImage
    header: Dataset  # read only: each output copies it (`build_output`)
    tier: Tier
    config: CompressConfig
    cut: Cut | None  # the tier's frames, cut from the layered encode
    lut: ModalityLUT

    def write(self, encoded: list[Encoded], result: TierResult) -> Written:
        return write_output(
            self.source, self.header, self.tier, encoded, out_dir=self.config.out_dir,
            verify=self.config.verify, result=result,
        )  # fmt: skip

    def measure(
        self, result: TierResult, frames: tuple[list[Encoded], list[float]], written: Written
    ) -> dict[int, str]:
        encoded, encode_ms = frames
        return self.config.measure(
            result, source=self.source, tier=self.tier, encoded=encoded, encode_ms=encode_ms,
            verified=written.verified, lut=self.lut,
        )  # fmt: skip


def compress_file(path: Path, tiers: Sequence[Tier], config: CompressConfig) -> list[TierResult]:
    """Compress ``path`` into each of ``tiers``; never raises for a bad input. Each result
    carries the peak resident memory of the work (``peak_rss_bytes``, `dcmtier.work.peak`).

    Raises only ``OSError`` (and ``MemoryError``) from the environment: the output cannot be
    written, the disk is full.
    """
    with peak.window() as measured:
        results = _compress_file(path, tiers, config)
    for result in results:
        result.peak_rss_bytes = measured.bytes
    return results


def _compress_file(path: Path, tiers: Sequence[Tier], config: CompressConfig) -> list[TierResult]:
    started = time.perf_counter()
    try:
        source = cached_source(path, config.sources) or read_source(path)
        lut = _lut(source)
    except NoPixelData as exc:
        key = _header_key(path)
        return [_skipped(path, key, tier, exc, config) for tier in tiers]
    except OSError:
        raise
    except Exception as exc:  # InvalidInput, or a library's surprise on this one file
        key = _header_key(path)
        return [
            TierResult(key, tier.name, FAILED, reason=_reason(path, key, exc),
                       error=type(exc).__name__, path=str(path))
            for tier in tiers
        ]  # fmt: skip
    key = file_key(path, source.sop_uid)
    read_ms = (time.perf_counter() - started) * 1000
    try:
        cuts = _layered_cuts(source, tiers, config)
        results = [
            _compress_tier(_TierWork(source, source.dataset, t, config, cuts.get(t.name), lut), key)
            for t in tiers
        ]
    finally:
        release(path, config.sources)
    for result in results:  # one read serves every tier: each carries its share
        result.steps_ms["read"] = round(read_ms / len(results), 3)
    return results


def _lut(source: SourceImage) -> ModalityLUT:
    """The source's modality LUT, over the precision its stored values need."""
    try:
        return ModalityLUT.from_dataset(source.dataset, bits_stored=source.spec.bits_stored)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"{source.path}: invalid input: {exc}") from exc


def _header_key(path: Path) -> str:
    """The file key of a file that could not be read as a source: its header's SOP Instance
    UID if that much is readable, else its content hash."""
    try:
        sop_uid = str(dcmread(path, stop_before_pixels=True).get("SOPInstanceUID") or "")
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError):
        sop_uid = ""
    return file_key(path, sop_uid)


def _layered_cuts(
    source: SourceImage, tiers: Sequence[Tier], config: CompressConfig
) -> dict[str, Cut]:
    """With the layered strategy, every allowed J2K rate tier's frames from one encode."""
    if config.strategy != LAYERED:
        return {}
    wanted = {t.name: t for t in (*config.layer_tiers, *tiers)}.values()
    allowed = [t for t in wanted if _refusal(source, t, config.policy) is None]
    try:  # only this call's tiers are cut, the layers being those of the run's tiers
        return cut_tiers(source, allowed, config.layer_cache, only={t.name for t in tiers})
    except OSError:
        raise
    except Exception:
        return {}  # each tier then encodes on its own and reports its own error


def _refusal(source: SourceImage, tier: Tier, policy: Policy) -> DcmtierError | None:
    """Why the policy or the codec refuses ``tier`` for ``source``; None when neither does."""
    try:
        kind = PixelKind(source.spec.bits_allocated, source.dataset.PhotometricInterpretation)
        policy.check(tier, modality=source.modality, kind=kind)
        if not tier.chooses and not _near_bound(tier):  # their codings are checked as chosen
            codecs.backend(tier.codec.label).check(source.dataset, source.spec, tier)
    except DcmtierError as exc:
        return exc
    return None


def _compress_tier(work: _TierWork, key: str) -> TierResult:
    source, tier = work.source, work.tier
    result = _base_result(source, key, tier)
    try:
        refusal = _refusal(source, tier, work.config.policy)
        if refusal is not None:
            raise refusal
        tried: dict[str, object] | None = None
        if tier.chooses or _near_bound(tier):
            work, frames, tried = _choose(work, result)
        else:
            frames = _encode(work)
        result.encode_ms = round(sum(frames[1]), 3)
        written = work.write(frames[0], result)
        broken = work.measure(result, frames, written)
        if broken:
            _on_gate_failure(work, result, broken, frames, written)
        if tried is not None:  # what the choice tried stays with the output's record
            result.params["candidates"] = tried
    except PolicyRefused as exc:
        result.status, result.rule = REFUSED, exc.rule
        result.reason = _message(source.path, key, exc)
        return result
    except OSError:
        raise
    except Exception as exc:  # DcmtierError, or a codec's surprise: this instance fails alone
        result.status, result.error = FAILED, type(exc).__name__
        result.reason = _reason(source.path, key, exc)
        return result
    return result


def _near_bound(tier: Tier) -> bool:
    """A JPEG-LS tier with a bound: its NEAR is derived per instance (``jls-maxerr20``)."""
    return tier.codec.label == "jls" and tier.bound is not None and not tier.chooses


def _choose(
    work: _TierWork, result: TierResult
) -> tuple[_TierWork, tuple[list[Encoded], list[float]], dict[str, object]]:
    """Code the instance for a choosing or JPEG-LS bound tier (`dcmtier.work.choosing`); the
    work and result then carry the tier as coded: its codec, NEAR and transfer syntax."""
    source, tier, config = work.source, work.tier, work.config
    if tier.chooses:
        chosen = choosing.choose(source, tier, work.lut, config.policy, config.layer_cache)
    else:
        chosen = choosing.code_near(source, tier, work.lut, config.policy)
    result.codec = chosen.tier.codec.label
    result.transfer_syntax = chosen.tier.transfer_syntax
    coded = dataclasses.replace(work, tier=chosen.tier)
    return coded, (chosen.frames.in_memory, chosen.encode_ms), chosen.tried


def _encode(work: _TierWork) -> tuple[list[Encoded], list[float]]:
    """The tier's frames and each one's encode time in ms: searched to the tier's bound, cut
    from the layered encode, or encoded for the tier alone."""
    if work.tier.bound is not None:
        return _encode_to_bound(work)
    if work.cut is not None:
        return list(work.cut.frames), list(work.cut.encode_ms)
    return _encode_frames(work.source, work.tier)


def _encode_to_bound(work: _TierWork) -> tuple[list[Encoded], list[float]]:
    """Each frame at the highest ratio whose decoded frame meets the tier's bound."""
    source, tier = work.source, work.tier
    gate = gate_for(tier)
    assert gate is not None  # a bound is a gate
    max_ratio = work.config.policy.max_ratio(source.modality)
    encoded, times = [], []
    for index, frame in enumerate(source.iter_frames()):
        judge = FrameJudge(source, tier, index, frame, gate, work.lut, max_ratio)
        found = target_frame(judge, work.config.layer_cache)
        encoded.append(found.encoded)
        times.append(round(found.encode_ms, 3))
    return encoded, times


def _on_gate_failure(
    work: _TierWork,
    result: TierResult,
    broken: dict[int, str],
    frames: tuple[list[Encoded], list[float]],
    written: Written,
) -> None:
    """Apply the policy's ``on_gate_failure`` to the frames in ``broken`` (index: rule)."""
    action = work.config.policy.on_gate_failure.for_tier(work.tier)
    result.gate_action = action
    if action == KEEP:
        gating.keep(result, broken, work.tier)
        return
    if action == REJECT:
        gating.reject(result, broken, work.tier, written.target)
        return
    gate = gate_for(work.tier)
    assert gate is not None  # only a gated tier has broken frames
    # only the broken frames' originals are kept: a large instance is not held whole
    originals = {i: f for i, f in enumerate(work.source.iter_frames()) if i in broken}
    judge = lambda i: FrameJudge(work.source, work.tier, i, originals[i], gate, work.lut)  # noqa: E731
    gating.fall_back_frames(broken, frames, judge, work.cut, work.config.layer_cache)
    result.frame_metrics = []
    result.encode_ms = round(sum(frames[1]), 3)
    written = work.write(frames[0], result)
    still = work.measure(result, frames, written)
    if still:  # cannot happen with a deterministic decoder; say so rather than hide it
        raise VerificationFailed(
            f"{result.source}: frame {min(still)} still breaks the gate after its fallback"
        )
    gating.record_fallback(result, broken)


def _encode_frames(source: SourceImage, tier: Tier) -> tuple[list[Encoded], list[float]]:
    """Encode every frame; also return each frame's encode time in ms."""
    backend = codecs.backend(tier.codec.label)
    encoded: list[Encoded] = []
    times: list[float] = []
    frames, spec = _encoder_input(source, backend)
    for frame in frames:
        started = time.perf_counter()
        encoded.append(backend.encode(frame, spec, tier))
        times.append(round((time.perf_counter() - started) * 1000, 3))
    return encoded, times


def _encoder_input(source: SourceImage, backend: Backend) -> tuple[Iterable[Any], FrameSpec]:
    """Frames of stored values, or the source's own codestreams for a recompressing codec."""
    if backend.recompresses:
        return source.codestreams(), source.codestream_spec
    return source.iter_frames(), source.spec


def _base_result(source: SourceImage, key: str, tier: Tier) -> TierResult:
    return TierResult(
        source=key,
        path=str(source.path),
        tier=tier.name,
        status=OK,
        study_instance_uid=source.study_uid,
        series_instance_uid=source.series_uid,
        sop_instance_uid_in=source.sop_uid,
        modality=source.modality,
        descriptors=series_descriptors(source.dataset),
        codec=tier.codec.label,
        transfer_syntax=tier.transfer_syntax,
        target_ratio=tier.target_ratio,
        frames=source.frames,
        pixel_bytes_in=source.pixel_bytes,
        file_bytes_in=source.file_bytes,
    )


def _reason(path: Path, key: str, exc: Exception) -> str:
    """One line naming the file once, by its key; an error that is not dcmtier's own says its
    class (it is a library's surprise, not a judgement of the input)."""
    message = _message(path, key, exc)
    if message.startswith(f"{key}: "):
        message = message.removeprefix(f"{key}: ")
    if not isinstance(exc, DcmtierError):
        message = f"unexpected {type(exc).__name__}: {message}"
    return f"{key}: {message}"


def _message(path: Path, key: str, exc: Exception) -> str:
    """The error on one line, with the source's path (however spelled) replaced by its key."""
    return name_by_key(one_line(exc), path, key)


def _skipped(
    path: Path, key: str, tier: Tier, exc: NoPixelData, config: CompressConfig
) -> TierResult:
    result = TierResult(key, tier.name, SKIPPED, reason=_reason(path, key, exc), path=str(path))
    copied = config.no_pixels(path, tier, config.out_dir)
    if copied is not None:
        result.output = str(copied)
    return result
