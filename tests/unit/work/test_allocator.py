"""``tune_allocator``: freed frame-sized buffers stay in the heap instead of being unmapped."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dcmtier.work import allocator

# A child compresses 512x512 CT slices one after another (as a batch worker does) and reports
# the page faults of all files but the first.
_CHILD = """
import json, resource, sys, tempfile
from pathlib import Path
from dcmtier.work.allocator import tune_allocator
from dcmtier.work import verify
from dcmtier.work.compress import CompressConfig, compress_file
from dcmtier.sample import write_ct_series
from dcmtier.tiers import get_tier
tuned = tune_allocator() if sys.argv[1] == "tune" else False
work = Path(tempfile.mkdtemp())
files = write_ct_series(work / "in", slices=9)
fast = sys.argv[2] == "fast"  # else pydicom reads the sources and the outputs are read back
if not fast:  # implicit VR: read whole by pydicom, its frames copied
    from pydicom import dcmread
    for path in files:
        ds = dcmread(path)
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
        ds.save_as(path, implicit_vr=True, little_endian=True)
tier = get_tier("htj2k-lossless")
options = CompressConfig(work / "out", verify=verify.in_memory if fast else verify.read_back)
compress_file(files[0], [tier], options)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for path in files[1:]:
    assert compress_file(path, [tier], options)[0].status == "ok"
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"tuned": tuned, "faults_per_file": (after - before) / (len(files) - 1)}))
"""

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="mallopt thresholds are glibc's",
)


def _faults(mode: str, path: str = "pydicom", **env: str) -> dict[str, object]:
    """The child's report with the fewest faults of three runs: the kernel adds faults of its
    own under memory pressure (reclaim, a busy machine: 24-83 a file quiet, 507 once while a
    test suite ran beside it), never takes away those of buffers mapped afresh."""
    clean = {k: v for k, v in os.environ.items() if k not in allocator._OWNER_SETTINGS}
    reports: list[dict[str, object]] = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, mode, path],
            env={**clean, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        reports.append(json.loads(out.stdout))
    return min(reports, key=lambda r: float(str(r["faults_per_file"])))


@glibc
def test_buffers_freed_between_files_are_reused_without_new_page_faults() -> None:
    plain, tuned = _faults("plain"), _faults("tune")
    assert tuned["tuned"] is True and plain["tuned"] is False
    # measured before issue #17: ~640 faults a file untuned (2.5 MB mapped afresh), under 100
    # tuned. Since then the per-file copies are gone and untuned processes fault 28-31 times a
    # file here too, so only the tuned bound is asserted.
    assert float(tuned["faults_per_file"]) < 100


@glibc
def test_the_one_buffer_path_maps_no_frame_sized_buffers_afresh_even_untuned() -> None:
    # measured: 17-18 faults a file untuned, against ~640 on pydicom's write and read-back
    assert float(_faults("plain", "fast")["faults_per_file"]) < 100


@glibc
def test_an_owner_s_own_malloc_settings_are_left_alone() -> None:
    report = _faults("tune", MALLOC_TRIM_THRESHOLD_="1000000")
    assert report["tuned"] is False


def test_tuning_happens_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(allocator, "_set_thresholds", lambda: calls.append(1) or True)
    allocator.tune_allocator.cache_clear()
    try:
        assert allocator.tune_allocator() and allocator.tune_allocator()
    finally:
        allocator.tune_allocator.cache_clear()
    assert calls == [1]
