"""``python -m dcmtier.bench.jpegxl``: JPEG XL lossless beside J2K lossless on files given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcmtier.bench import jpegxl
from tests.support import reference_file


def test_each_file_and_all_together_are_compared_with_j2k_lossless(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "ct.dcm").write_bytes(reference_file("CT_small.dcm").read_bytes())
    (folder / "notes.txt").write_text("not a scan")  # a folder gives its *.dcm files only
    mr = reference_file("MR_small.dcm")

    assert jpegxl.main([str(folder), str(mr), "--efforts", "1", "3", "--json"]) == 0

    sets = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["set"] for s in sets] == [str(folder / "ct.dcm"), str(mr), "all"]
    for found in sets:
        codecs = found["codecs"]
        assert set(codecs) == {"j2k-lossless", "jxl effort 1", "jxl effort 3"}
        assert codecs["j2k-lossless"]["bytes_vs_j2k"] == 1.0
        for row in codecs.values():
            assert row["ratio"] == pytest.approx(found["stored_bytes"] / row["bytes"], rel=1e-3)
    together = sets[-1]
    assert together["frames"] == sets[0]["frames"] + sets[1]["frames"]
    for codec, row in together["codecs"].items():  # the set's bytes: the files' added up
        assert row["bytes"] == sum(s["codecs"][codec]["bytes"] for s in sets[:2])


def test_a_file_the_backends_cannot_take_is_named_and_the_others_still_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"DICM but not really")
    ct = reference_file("CT_small.dcm")

    assert jpegxl.main([str(broken), str(ct), "--efforts", "3"]) == 1

    out, err = capsys.readouterr()
    assert f"{broken}: not measured: " in err and len(err.strip().splitlines()) == 2  # + "all"
    assert f"{ct}: 1 frames" in out
    assert "jxl effort 3" in out
