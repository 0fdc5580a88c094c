"""Compress one source file into every requested tier, write atomically, verify by decoding.

Each (source, tier) ends as one ``TierResult``: ``ok``, ``skipped``, ``refused`` or ``failed``,
with a one-line reason; nothing is dropped silently. Results and reasons name the source by its
file key (SOP Instance UID, else a content hash), never by its path, which may carry a patient
name. Any error about one file (its header, its modality LUT, a codec surprise) fails that file
alone; only environment errors (``OSError``: a full disk, an unwritable output) propagate, since
every other file would meet them too.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError

from dcmtier import owner
from dcmtier.codec import backends as codecs
from dcmtier.codec import part10
from dcmtier.codec.backends import Encoded, FrameSpec
from dcmtier.codec.derive import build_output, encapsulate_frames
from dcmtier.codec.layering import Cut, cut_tiers
from dcmtier.codec.part10 import Part10
from dcmtier.codec.pixels import SourceImage, read_source
from dcmtier.codec.policy import FALLBACK, KEEP, REJECT, PixelKind, Policy
from dcmtier.descriptors import series_descriptors
from dcmtier.errors import (
    CodecError,
    DcmtierError,
    InvalidInput,
    NoPixelData,
    PolicyRefused,
    VerificationFailed,
    one_line,
)
from dcmtier.measure.gates import gate_for
from dcmtier.measure.metrics import ModalityLUT, frame_metrics
from dcmtier.outputs import uid_name
from dcmtier.records import (
    FAILED,
    GATE_FAILED,
    LAYERED,
    OK,
    PER_TIER,
    REFUSED,
    REJECTED,
    SKIPPED,
    TierResult,
    file_key,
    name_by_key,
)
from dcmtier.tiers import Tier
from dcmtier.work.sources import SourceIndex, cached_source, release
from dcmtier.work.targeting import FrameJudge, fall_back, target_frame

ENCODER = part10.Encoder()  # this process's series x tier header templates


@dataclass(frozen=True)
class Options:
    """How a batch runs; read once from the command line or the task's params."""

    out_dir: Path
    policy: Policy = field(default_factory=Policy)
    passthrough: bool = False  # copy objects without pixel data unchanged into each tier
    measure: bool = False  # compute per-frame quality metrics and apply the tier's gate
    strategy: str = PER_TIER  # or LAYERED: J2K rate tiers cut from one layered encode
    layer_tiers: tuple[Tier, ...] = ()  # the run's J2K rate tiers, when wider than ``tiers``
    layer_cache: Path | None = None  # keep layered codestreams here, shared by tier tasks
    # verify by parsing the written file with pydicom and decoding its frames, instead of
    # decoding the codestreams in memory and comparing the file's bytes with the buffer
    read_back: bool = False
    # write with `dcmtier.codec.part10` where it gives pydicom's bytes; False: pydicom always
    # (what dcmtier did before issue #17; the byte-identity tests compare the two)
    one_buffer: bool = True
    # the study's sources as its encode task read them (`dcmtier.work.sources`): each source
    # it holds is taken from there instead of being read and parsed again
    sources: SourceIndex | None = None


def output_path(out_dir: Path, tier: str, study: str, series: str, sop: str) -> Path:
    """``DIR/<tier>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` (UIDs only;
    a UID that cannot name a file is named by a hash of it, ``outputs.uid_name``)."""
    return out_dir / tier / uid_name(study) / uid_name(series) / f"{uid_name(sop)}.dcm"


def compress_file(path: Path, tiers: Sequence[Tier], options: Options) -> list[TierResult]:
    """Compress ``path`` into each of ``tiers``; never raises for a bad input.

    Raises only ``OSError`` (and ``MemoryError``) from the environment: the output cannot be
    written, the disk is full.
    """
    started = time.perf_counter()
    try:
        source = cached_source(path, options.sources) or read_source(path)
        lut = _lut(source)
        header = source.dataset  # read only: each output copies it (`build_output`)
    except NoPixelData as exc:
        key = _header_key(path)
        return [_skipped(path, key, tier, exc, options) for tier in tiers]
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
        cuts = _layered_cuts(source, tiers, options)
        results = [
            _compress_tier(source, header, t, options, cuts.get(t.name), key=key, lut=lut)
            for t in tiers
        ]
    finally:
        release(path, options.sources)
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


def _layered_cuts(source: SourceImage, tiers: Sequence[Tier], opts: Options) -> dict[str, Cut]:
    """With the layered strategy, every allowed J2K rate tier's frames from one encode."""
    if opts.strategy != LAYERED:
        return {}
    wanted = {t.name: t for t in (*opts.layer_tiers, *tiers)}.values()
    allowed = [t for t in wanted if _refusal(source, t, opts) is None]
    try:  # only this call's tiers are cut, the layers being those of the run's tiers
        return cut_tiers(source, allowed, opts.layer_cache, only={t.name for t in tiers})
    except OSError:
        raise
    except Exception:
        return {}  # each tier then encodes on its own and reports its own error


def _refusal(source: SourceImage, tier: Tier, opts: Options) -> DcmtierError | None:
    try:
        kind = PixelKind(source.spec.bits_allocated, source.dataset.PhotometricInterpretation)
        opts.policy.check(tier, modality=source.modality, kind=kind)
        _check_codec(source, tier)
    except DcmtierError as exc:
        return exc
    return None


def _compress_tier(
    source: SourceImage,
    header: Dataset,
    tier: Tier,
    opts: Options,
    cut: Cut | None,
    *,
    key: str,
    lut: ModalityLUT,
) -> TierResult:
    result = _base_result(source, key, tier)
    try:
        refusal = _refusal(source, tier, opts)
        if refusal is not None:
            raise refusal
        if tier.bound is not None:
            encoded, encode_ms = _encode_to_bound(source, tier, opts, lut)
        elif cut is not None:
            encoded, encode_ms = list(cut.frames), list(cut.encode_ms)
        else:
            encoded, encode_ms = _encode_frames(source, tier)
        result.encode_ms = round(sum(encode_ms), 3)
        written = _write(source, header, tier, opts, encoded, result=result)
        if opts.measure:
            broken = measure(
                result, source=source, tier=tier, encoded=encoded, encode_ms=encode_ms,
                verified=written.verified, lut=lut,
            )  # fmt: skip
            if broken:
                written = _on_gate_failure(
                    result, broken, source=source, header=header, tier=tier, opts=opts,
                    cut=cut, frames=(encoded, encode_ms), written=written, lut=lut,
                )  # fmt: skip
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


@dataclass
class Written:
    """An output written, verified and renamed into place."""

    target: Path
    dataset: Dataset
    verified: Verified


def _write(
    source: SourceImage,
    header: Dataset,
    tier: Tier,
    opts: Options,
    encoded: list[Encoded],
    *,
    result: TierResult,
) -> Written:
    """Build, write atomically and verify the output of ``encoded``; fill the result's sizes.

    The file is written from one buffer (`dcmtier.codec.part10`) where that gives pydicom's
    bytes, else by pydicom. Each step's time goes to ``result.steps_ms``.
    """
    started = time.perf_counter()
    ratio = source.pixel_bytes / sum(len(e.data) for e in encoded)
    frames = [e.data for e in encoded]
    out = build_output(
        header, encoded, tier, achieved_ratio=ratio, lossy_source=source.lossy_history,
        pixel_data=False,
    )  # fmt: skip
    part = None
    if opts.one_buffer and part10.can_encode(out, frames):
        part = ENCODER.encode(out, frames, template=(source.series_uid, tier.name))
    if part is None:
        encapsulate_frames(out, frames)  # pydicom writes it
    target = output_path(
        opts.out_dir, tier.name, source.study_uid, source.series_uid, str(out.SOPInstanceUID)
    )
    steps = result.steps_ms
    steps["header"] = _ms_since(started)
    verified: list[Verified] = []
    check = lambda tmp: verified.append(  # noqa: E731
        verify(tmp, source, tier) if opts.read_back or part is None
        else verify_buffer(tmp, part, encoded, source, tier)
    )  # fmt: skip
    started = time.perf_counter()
    if part is None:
        write_atomic(out, target, check=check, steps=steps)
    else:
        write_bytes_atomic(part.data, target, check=check, steps=steps)
    steps["write"] = round(_ms_since(started) - steps["verify"], 3)
    decode_ms = round(sum(verified[0].decode_ms), 3)
    steps["verify"] = round(steps["verify"] - decode_ms, 3)
    steps["decode"] = decode_ms
    result.verify_ms = round(steps["write"] + steps["verify"] + decode_ms, 3)
    result.decode_ms = decode_ms
    _fill_sizes(result, source, encoded, target, out, file_bytes=len(part.data) if part else None)
    return Written(target, out, verified[0])


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _encode_to_bound(
    source: SourceImage, tier: Tier, opts: Options, lut: ModalityLUT
) -> tuple[list[Encoded], list[float]]:
    """Each frame at the highest ratio whose decoded frame meets the tier's bound."""
    gate = gate_for(tier)
    assert gate is not None  # a bound is a gate
    max_ratio = opts.policy.max_ratio(source.modality)
    encoded, times = [], []
    for index, frame in enumerate(source.iter_frames()):
        judge = FrameJudge(source, tier, index, frame, gate, lut, max_ratio)
        found = target_frame(judge, opts.layer_cache)
        encoded.append(found.encoded)
        times.append(round(found.encode_ms, 3))
    return encoded, times


def _on_gate_failure(
    result: TierResult,
    broken: dict[int, str],
    *,
    source: SourceImage,
    header: Dataset,
    tier: Tier,
    opts: Options,
    cut: Cut | None,
    frames: tuple[list[Encoded], list[float]],
    written: Written,
    lut: ModalityLUT,
) -> Written:
    """Apply the policy's ``on_gate_failure`` to the frames in ``broken`` (index: rule)."""
    action = opts.policy.on_gate_failure.for_tier(tier)
    result.gate_action = action
    first = min(broken)
    if action == KEEP:
        result.status, result.gate = GATE_FAILED, f"{tier.use.value} gate: {broken[first]}"
        result.reason = f"{result.source}: frame {first} broke the {result.gate}; kept (keep)"
        _mark(result, broken, KEEP)
        return written
    if action == REJECT:
        written.target.unlink(missing_ok=True)
        result.status, result.gate = REJECTED, f"{tier.use.value} gate: {broken[first]}"
        result.reason = f"{result.source}: frame {first} broke the {result.gate}; output rejected"
        result.output = None
        _mark(result, broken, REJECT)
        return written
    encoded, encode_ms = frames
    gate = gate_for(tier)
    assert gate is not None  # only a gated tier has broken frames
    originals = list(source.iter_frames())
    for index in sorted(broken):
        judge = FrameJudge(source, tier, index, originals[index], gate, lut)
        rate_layers = cut.layers[index] if cut is not None and cut.layers else None
        found = fall_back(judge, opts.layer_cache, rate_layers, cut.layer if cut else 0)
        encoded[index] = found.encoded
        encode_ms[index] = round(encode_ms[index] + found.encode_ms, 3)
    result.frame_metrics = []
    result.encode_ms = round(sum(encode_ms), 3)
    written = _write(source, header, tier, opts, encoded, result=result)
    still = measure(
        result, source=source, tier=tier, encoded=encoded, encode_ms=encode_ms,
        verified=written.verified, lut=lut,
    )  # fmt: skip
    if still:  # cannot happen with a deterministic decoder; say so rather than hide it
        raise VerificationFailed(
            f"{result.source}: frame {min(still)} still breaks the gate after its fallback"
        )
    result.fallback_frames = len(broken)
    for index, rule in broken.items():
        result.frame_metrics[index].update(gate=rule, gate_action=FALLBACK, fell_back=True)
    return written


def _mark(result: TierResult, broken: dict[int, str], action: str) -> None:
    for index in broken:
        result.frame_metrics[index]["gate_action"] = action


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


def _encoder_input(source: SourceImage, backend: ModuleType) -> tuple[Iterable[Any], FrameSpec]:
    """Frames of stored values, or the source's own codestreams for a recompressing codec."""
    if getattr(backend, "RECOMPRESSES", False):
        return source.codestreams(), source.codestream_spec
    return source.iter_frames(), source.spec


def _check_codec(source: SourceImage, tier: Tier) -> None:
    backend = codecs.backend(tier.codec.label)
    if not backend.is_available():
        raise CodecError(f"codec {tier.codec.label} is not installed")
    check_source = getattr(backend, "check_source", None)
    if check_source is not None:
        check_source(source.dataset, source.spec)
    limit = int(getattr(backend, "MAX_BITS", 16))
    if source.spec.bits_stored > limit:
        raise PolicyRefused(
            f"{tier.codec.description} here codes at most {limit} bits stored",
            rule=f"codec:{tier.codec.label}:max-bits",
        )
    if source.spec.bits_allocated == 1 and tier.codec.label != "j2k":
        raise PolicyRefused(
            f"1-bit pixel data is coded with JPEG 2000 only, not {tier.codec.description}",
            rule=f"codec:{tier.codec.label}:1-bit",
        )
    min_side = int(backend.MIN_SIDE if tier.lossless else backend.MIN_LOSSY_SIDE)
    if min(source.spec.rows, source.spec.columns) < min_side:
        mode = "lossless" if tier.lossless else "lossy"
        raise PolicyRefused(
            f"{tier.codec.description} {mode} here needs at least {min_side} pixels a side",
            rule=f"codec:{tier.codec.label}:min-size",
        )


def write_atomic(
    ds: Dataset,
    target: Path,
    *,
    check: Callable[[Path], object] | None = None,
    steps: dict[str, float] | None = None,
) -> None:
    """Write ``ds`` to a temporary file beside ``target``, ``check`` it, then rename it.

    A file that fails its check never appears under ``target``'s name. The check's time goes
    to ``steps["verify"]`` when ``steps`` is given.
    """
    _atomic(lambda handle: ds.save_as(handle, enforce_file_format=True), target, check, steps)


def write_bytes_atomic(
    data: bytes | bytearray,
    target: Path,
    *,
    check: Callable[[Path], object] | None = None,
    steps: dict[str, float] | None = None,
) -> None:
    """`write_atomic` for a file already encoded: ``data`` in one write."""
    _atomic(lambda handle: handle.write(data), target, check, steps)


def _atomic(
    write: Callable[[Any], object],
    target: Path,
    check: Callable[[Path], object] | None,
    steps: dict[str, float] | None,
) -> None:
    tmp, handle = owner.open_temp(target)  # named for this process: other runs leave it alone
    try:
        with handle:
            write(handle)
        owner.checkpoint("compress")
        started = time.perf_counter()
        if check is not None:
            check(tmp)
        if steps is not None:
            steps["verify"] = _ms_since(started)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class Verified:
    """The decoded frames of a written output, with each frame's decode time in ms."""

    frames: list[np.ndarray]
    decode_ms: list[float]


def verify(path: Path, source: SourceImage, tier: Tier) -> Verified:
    """Read the written file back, decode every frame and compare it with the source.

    The file is parsed with pydicom and each frame's codestream decoded by the codec's own
    library (pydicom's pixel pipeline is tested against the same outputs, with GDCM and
    OpenJPEG's tools besides; going direct saves its per-frame overhead, and HTJ2K decodes
    with OpenJPH, 1.5 ms a 512x512 frame against OpenJPEG's 3.4 ms). Lossless must be
    bit-exact and JPEG-LS near-lossless within NEAR; any tier must decode to the source's
    frame count and shape. Returns the decoded frames (for quality metrics).
    """
    return _check_decoded(path, _decode_written(path, source, tier), source, tier)


def _check_decoded(path: Path, decoded: Verified, source: SourceImage, tier: Tier) -> Verified:
    if len(decoded.frames) != source.frames:
        raise VerificationFailed(
            f"written output: {len(decoded.frames)} frames decoded, {source.frames} written"
        )
    if getattr(codecs.backend(tier.codec.label), "RECOMPRESSES", False):
        _compare_codestreams(path, decoded, source)
        # the same codestream decodes to the same pixels: the source's frames are the output's
        decoded.frames = list(source.iter_frames())
        return decoded
    for index, (got, want) in enumerate(zip(decoded.frames, source.iter_frames(), strict=True)):
        _compare(path, index, got, want, tier)
    return decoded


def verify_buffer(
    path: Path, part: Part10, encoded: list[Encoded], source: SourceImage, tier: Tier
) -> Verified:
    """Check that the file at ``path`` holds exactly ``part``'s bytes, decode the codestreams
    from memory and compare them with the source, as `verify` does from the parsed file.

    ``part`` is pydicom's bytes for the output (`dcmtier.codec.part10`), so the file needs no
    second parse: equal bytes are the same dataset, transfer syntax and frames.
    """
    written = path.read_bytes()
    if written != part.data:
        raise VerificationFailed(
            f"written output: the file's {len(written)} bytes differ from the {len(part.data)} "
            "written"
        )
    backend = codecs.backend(tier.codec.label)
    shape = source.spec.shape
    out = Verified([], [])
    try:
        for item in encoded:
            started = time.perf_counter()
            frame = backend.decode(item.data, source.spec)
            out.decode_ms.append(_ms_since(started))
            out.frames.append(frame.reshape(shape) if frame.size == math.prod(shape) else frame)
    except Exception as exc:
        raise VerificationFailed(f"written output does not decode: {exc}") from exc
    return _check_decoded(path, out, source, tier)


def _compare_codestreams(path: Path, decoded: Verified, source: SourceImage) -> None:
    """A recompressed frame must give back the source's codestream byte for byte."""
    for index, (got, want) in enumerate(zip(decoded.frames, source.codestreams(), strict=True)):
        if got.tobytes() != want:
            raise VerificationFailed(
                f"written output, frame {index}: the rebuilt codestream ({got.size} bytes) differs "
                f"from the source's ({len(want)} bytes)"
            )


def _decode_written(path: Path, source: SourceImage, tier: Tier) -> Verified:
    out = Verified([], [])
    backend = codecs.backend(tier.codec.label)
    shape = source.spec.shape
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
        for data in generate_frames(
            ds.PixelData, number_of_frames=frames, extended_offsets=extended
        ):
            started = time.perf_counter()
            frame = backend.decode(data, source.spec)
            out.decode_ms.append(round((time.perf_counter() - started) * 1000, 3))
            out.frames.append(frame.reshape(shape) if frame.size == math.prod(shape) else frame)
    except VerificationFailed:
        raise
    except Exception as exc:
        raise VerificationFailed(f"written output does not decode: {exc}") from exc
    return out


def _compare(path: Path, index: int, got: np.ndarray, want: np.ndarray, tier: Tier) -> None:
    where = f"written output, frame {index}"
    if got.shape != want.shape:
        raise VerificationFailed(f"{where}: decoded shape {got.shape}, source {want.shape}")
    if tier.target_ratio is not None or tier.bound is not None or np.array_equal(got, want):
        return
    err = int(np.max(np.abs(got.astype(np.int32) - want.astype(np.int32)), initial=0))
    if err > tier.near:
        kind = "lossless" if tier.lossless else f"NEAR={tier.near}"
        raise VerificationFailed(f"{where}: {kind} output differs from source by up to {err}")


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


def _fill_sizes(
    result: TierResult,
    source: SourceImage,
    encoded: list[Encoded],
    target: Path,
    out: Dataset,
    *,
    file_bytes: int | None = None,
) -> None:
    result.output = str(target)
    result.sop_instance_uid_out = str(out.SOPInstanceUID)
    result.pixel_bytes_out = sum(len(e.data) for e in encoded)
    result.pixel_ratio = round(source.pixel_bytes / result.pixel_bytes_out, 4)
    result.file_bytes_out = file_bytes if file_bytes is not None else target.stat().st_size
    result.file_ratio = round(source.file_bytes / result.file_bytes_out, 4)
    result.encodes = sum(e.encodes for e in encoded)
    result.params = {
        "strategy": PER_TIER,
        **encoded[0].params,
        "photometric_out": encoded[0].photometric,
        "bits_stored": encoded[0].bits_stored,
    }
    result.params.pop("packets", None)  # per frame; the Parquet rows and pixel ratios say it
    if source.widened:  # stored values above the header's Bits Stored, kept: say so
        result.params["bits_stored_declared"] = source.bits_declared


def measure(
    result: TierResult,
    *,
    source: SourceImage,
    tier: Tier,
    encoded: list[Encoded],
    encode_ms: list[float],
    verified: Verified,
    lut: ModalityLUT | None = None,
) -> dict[int, str]:
    """Fill ``result.frame_metrics`` and check the tier's quality gate (REFERENCE.md 4).

    The originals are the values as stored in the file (``SourceImage.iter_frames``). Returns
    the frames that broke the gate, with the rule each broke; what happens to them is the
    policy's ``on_gate_failure``.
    """
    lut = lut or _lut(source)
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


def _skipped(path: Path, key: str, tier: Tier, exc: NoPixelData, opts: Options) -> TierResult:
    result = TierResult(key, tier.name, SKIPPED, reason=_reason(path, key, exc), path=str(path))
    if opts.passthrough:
        ds = dcmread(path)
        target = output_path(
            opts.out_dir, tier.name, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        result.output = str(target)
    return result
