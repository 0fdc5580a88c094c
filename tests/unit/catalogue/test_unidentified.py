"""Files that belong to no study still reach the ``failures`` view operators look at."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dcmtier.catalogue import Catalogue
from dcmtier.cli import main
from dcmtier.sample import write_ct_series


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    url = f"sqlite:///{tmp_path / 'catalogue.db'}"
    Catalogue.upgrade(url)
    return Catalogue.connect(url)


def _failures(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT study_uid, tier, file, status, reason FROM failures ORDER BY file"
        ).fetchall()


def test_an_unidentified_file_is_listed_until_discovery_no_longer_finds_it(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    db = tmp_path / "catalogue.db"
    catalogue.record_unidentified("/landing", {"/landing/a.txt": "/landing/a.txt: not DICOM"})
    catalogue.record_unidentified("/other", {"/other/b.bin": "/other/b.bin: not DICOM"})
    assert _failures(db) == [
        (None, None, "/landing/a.txt", "failed", "/landing/a.txt: not DICOM"),
        (None, None, "/other/b.bin", "failed", "/other/b.bin: not DICOM"),
    ]
    catalogue.record_unidentified("/landing", {"/landing/a.txt": "/landing/a.txt: not DICOM"})
    assert len(_failures(db)) == 2  # seen again: still one row each
    catalogue.record_unidentified("/landing", {})  # the file was fixed or removed
    assert [row[2] for row in _failures(db)] == ["/other/b.bin"]


def test_dcmtier_process_records_stray_files_in_the_default_catalogue(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_ct_series(landing / "s", slices=1, rows=64, columns=64, seed=4)
    (landing / "notes.txt").write_text("not DICOM\n")  # skipped: not a fault, not recorded
    (landing / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")  # cut short
    out = tmp_path / "out"
    code = main(["process", str(landing), "--out", str(out), "--tier", "j2k-lossless", "--json"])
    assert code == 1
    (row,) = _failures(out / "catalogue.db")
    assert row[:4] == (None, None, str((landing / "broken.dcm").absolute()), "failed")
    assert "StudyInstanceUID" in str(row[4])
