"""Issue #33: a large multi-frame instance is worked a frame at a time, into the same bytes.

Above ``pixels.CACHE_LIMIT`` the source's frames are read from the file by offset one at a
time, the output is written and checked piece by piece, and its frames are verified and
measured one at a time (decoded again for the metrics, not kept). Here the limit is lowered so
a 40-frame instance takes that path; its outputs and metrics must be those of the path that
keeps frames in memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dcmtier.bench.multiframe import write_multiframe
from dcmtier.codec import pixels
from dcmtier.codec.pixels import FileRange
from dcmtier.records import LAYERED, OK, PER_TIER, TierResult
from dcmtier.tiers import get_tier
from dcmtier.work import gating, peak, spool, verify
from dcmtier.work.compress import CompressConfig, compress_file
from tests.support import openjpeg_frames

FRAMES, SIZE = 40, 128
TIERS = ("htj2k-lossless", "j2k-r20")


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("multiframe") / "mf.dcm"
    write_multiframe(path, frames=FRAMES, rows=SIZE, columns=SIZE)
    return path


def _run(instance: Path, out: Path, strategy: str) -> list[TierResult]:
    config = CompressConfig(out, strategy=strategy, measure=gating.measure)
    return compress_file(instance, [get_tier(t) for t in TIERS], config)


def _digest(path: str | None) -> str:
    assert path is not None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _comparable(result: TierResult) -> dict[str, Any]:
    """What the two paths must agree on: all but timings, the output's folder and memory."""
    timed = ("encode_ms", "decode_ms")
    return {
        "status": result.status,
        "output": _digest(result.output),
        "sizes": (result.pixel_bytes_out, result.file_bytes_out),
        "params": result.params,
        "metrics": [{k: v for k, v in m.items() if k not in timed} for m in result.frame_metrics],
    }


@pytest.mark.parametrize("strategy", [PER_TIER, LAYERED])
def test_the_per_frame_path_writes_what_the_in_memory_path_writes(
    instance: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    kept = _run(instance, tmp_path / "kept", strategy)
    assert [r.status for r in kept] == [OK, OK]

    reads: list[int] = []
    real_read = FileRange.read

    def counted(self: FileRange, start: int, count: int) -> bytes:
        reads.append(count)
        return real_read(self, start, count)

    verified: list[verify.Verified] = []
    real_verify = verify.verify_buffer

    def spy(*args: Any) -> verify.Verified:
        verified.append(real_verify(*args))
        return verified[-1]

    monkeypatch.setattr(pixels, "CACHE_LIMIT", 2 * SIZE * SIZE * 2)  # one frame, no more
    monkeypatch.setattr(FileRange, "read", counted)
    monkeypatch.setattr(verify, "verify_buffer", spy)
    streamed = _run(instance, tmp_path / "streamed", strategy)

    assert [_comparable(r) for r in streamed] == [_comparable(r) for r in kept]
    assert reads and set(reads) == {SIZE * SIZE * 2}  # a frame at a time, by its offset
    assert len(verified) >= len(TIERS)  # and again for an output written again (fallback)
    assert all(isinstance(v.frames, verify.Redecoded) for v in verified)  # none kept
    assert all(r.peak_rss_bytes and r.peak_rss_bytes > 0 for r in streamed)


def test_the_choosing_tiers_spool_their_candidates_and_write_the_same_bytes_streamed(
    instance: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """maxerr20 and best-lossless code the instance with every candidate: each candidate's
    codestreams go to a temporary file (closed once it lost or was read back), its frames are
    read one at a time, and the output is the one the in-memory path made."""
    chooser = ("maxerr20", "best-lossless")
    config = CompressConfig(tmp_path / "kept", measure=gating.measure)
    kept = compress_file(instance, [get_tier(t) for t in chooser], config)
    assert [r.status for r in kept] == [OK, OK]

    opened: list[spool.Spool] = []
    closed: list[spool.Spool] = []
    real_init, real_close = spool.Spool.__init__, spool.Spool.close

    def init(self: spool.Spool) -> None:
        real_init(self)
        opened.append(self)

    def close(self: spool.Spool) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(spool.Spool, "__init__", init)
    monkeypatch.setattr(spool.Spool, "close", close)
    monkeypatch.setattr(pixels, "CACHE_LIMIT", 2 * SIZE * SIZE * 2)  # one frame, no more
    config = CompressConfig(tmp_path / "streamed", measure=gating.measure)
    streamed = compress_file(instance, [get_tier(t) for t in chooser], config)

    assert [_comparable(r) for r in streamed] == [_comparable(r) for r in kept]
    coded = [c for r in streamed for c in r.params["candidates"].values()
             if isinstance(c, int) or str(c).startswith("over")]  # fmt: skip
    assert len(opened) == len(coded) >= 2 * len(chooser), streamed[0].params  # one a candidate
    assert {id(s) for s in opened} <= {id(s) for s in closed}  # none left open


def test_the_per_frame_output_decodes_bit_exact_outside_the_project(
    instance: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pixels, "CACHE_LIMIT", 2 * SIZE * SIZE * 2)
    (result,) = compress_file(
        instance, [get_tier("htj2k-lossless")], CompressConfig(tmp_path / "out")
    )
    assert result.status == OK and result.output is not None
    source = pixels.read_source(instance)
    want = np.stack(list(source.iter_frames()))
    got = np.stack(openjpeg_frames(Path(result.output), tmp_path))
    assert np.array_equal(got.reshape(want.shape), want)


def test_a_window_reports_the_process_peak_and_whether_its_work_raised_it() -> None:
    size = 64 * 2**20
    start = peak.high_water()
    with peak.window() as big:
        block = np.ones(start + size, dtype=np.uint8)  # above any peak the process had
        del block
    with peak.window() as small:
        block = np.ones(1024, dtype=np.uint8)
        del block
    assert big.raised and big.bytes >= start + size
    assert not small.raised and small.bytes == big.bytes  # the mark is never reset
