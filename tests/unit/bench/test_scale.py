"""``dcmtier bench scale``: the synthetic archive has one study per folder with distinct UIDs,
and a case reports first, repeat and new-file passes of ``dcmtier discover``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmtier.bench.scale import lay_out, template
from dcmtier.cli import main


def test_the_synthetic_archive_has_distinct_uids_and_dates_per_study(tmp_path: Path) -> None:
    assert lay_out(tmp_path, 0, 3, 2, template()) == 6
    headers = [dcmread(p, stop_before_pixels=True) for p in sorted(tmp_path.rglob("*.dcm"))]
    assert len({h.StudyInstanceUID for h in headers}) == 3
    assert len({h.SOPInstanceUID for h in headers}) == 6
    assert all(h.file_meta.MediaStorageSOPInstanceUID == h.SOPInstanceUID for h in headers)
    assert [h.StudyDate for h in headers[::2]] == ["20240101", "20240102", "20240103"]


def test_a_scale_case_reads_every_header_once_then_only_the_new_study(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    argv = ["bench", "scale", "--scale-files", "40", "--new-files", "4", "--work",
            str(tmp_path), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    (case,) = json.loads(out.read_text())["discovery"]
    reads = [case[k]["headers_read"] for k in ("first", "repeat", "new")]
    assert reads == [40, 0, 4] and case["new"]["studies"] == 9


@pytest.mark.slow  # a moto server process: `make test` runs it, `make test-fast` does not
def test_a_scale_case_on_a_loopback_s3_server_reads_only_the_new_study(tmp_path: Path) -> None:
    """``--s3``: the archive in a bucket of moto's S3 API server, which the bench starts and
    stops; discovery lists it and reads each header with a GET."""
    out = tmp_path / "scale.json"
    argv = ["bench", "scale", "--s3", "--scale-files", "20", "--new-files", "5", "--work",
            str(tmp_path), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    (case,) = json.loads(out.read_text())["discovery"]
    assert case["landing"] == "s3 (moto server, loopback)"
    reads = [case[k]["headers_read"] for k in ("first", "repeat", "new")]
    listed = [case[k]["files_listed"] for k in ("first", "repeat", "new")]
    assert reads == [20, 0, 5] and listed == [20, 20, 25] and case["new"]["studies"] == 5
