"""Files that belong to no study still reach the ``failures`` view operators look at."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from dcmtier.catalogue import Catalogue
from dcmtier.cli import main
from dcmtier.records import Unidentified
from dcmtier.sample import write_ct_series


def _failures(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT study_uid, tier, file, status, reason FROM failures ORDER BY file"
        ).fetchall()


def _stray(key: str, uri: str) -> Unidentified:
    return Unidentified(key, uri, f"{key}: not DICOM")


def test_an_unidentified_file_is_listed_by_key_until_discovery_no_longer_finds_it(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    db = tmp_path / "catalogue.db"
    a, b = _stray("aa" * 16, "file:///landing/a.txt"), _stray("bb" * 16, "file:///other/b.bin")
    catalogue.record_unidentified("file:///landing/", [a])
    catalogue.record_unidentified("file:///other/", [b])
    assert _failures(db) == [
        (None, None, a.key, "failed", f"{a.key}: not DICOM"),
        (None, None, b.key, "failed", f"{b.key}: not DICOM"),
    ]
    assert [r["uri"] for r in catalogue.locate([a.key])] == ["file:///landing/a.txt"]
    catalogue.record_unidentified("file:///landing/", [a])
    assert len(_failures(db)) == 2  # seen again: still one row each
    catalogue.record_unidentified("file:///landing/", [])  # the file was fixed or removed
    assert [row[2] for row in _failures(db)] == [b.key]


def test_dcmtier_process_records_stray_files_by_key_in_the_default_catalogue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = tmp_path / "landing"
    write_ct_series(landing / "s", slices=1, rows=64, columns=64, seed=4)
    (landing / "notes.txt").write_text("not DICOM\n")  # skipped: not a fault, not recorded
    broken = landing / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")  # cut short: no study
    key = hashlib.sha256(broken.read_bytes()).hexdigest()[:32]
    out = tmp_path / "out"
    code = main(["process", str(landing), "--out", str(out), "--tier", "j2k-lossless", "--json"])
    assert code == 1
    (row,) = _failures(out / "catalogue.db")
    assert row[:4] == (None, None, key, "failed")
    assert str(row[4]).startswith(f"{key}: no readable StudyInstanceUID")
    printed = capsys.readouterr().out
    assert "notes" not in printed and "broken" not in printed
    assert (out / "quarantine" / "_unidentified" / f"{key}.dcm").read_bytes() == broken.read_bytes()
    assert main(["locate", key, "--out", str(out)]) == 0
    assert capsys.readouterr().out.split("\t")[:2] == [key, broken.absolute().as_uri()]
