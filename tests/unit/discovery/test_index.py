"""The landing index: headers are read for new or changed files only, vanished files are
marked gone, and what each pass did is counted (``dcmtier discover``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from dcmtier.catalogue import Catalogue
from dcmtier.catalogue.models import LandingFile
from dcmtier.cli import main
from dcmtier.discovery.index import index_landing, scopes_of
from dcmtier.sample import write_ct_series


def _archive(root: Path, studies: int, files: int, seed: int = 0) -> None:
    for n in range(studies):
        write_ct_series(root / f"s{seed + n}", slices=files, rows=8, columns=8, seed=seed + n,
                        study_date=f"202401{1 + n % 28:02d}")  # fmt: skip


def test_a_second_pass_reads_nothing_and_a_new_study_reads_only_its_files(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    root = tmp_path / "landing"
    _archive(root, studies=20, files=5)
    first = index_landing(str(root), catalogue)
    assert (first.files_listed, first.headers_read, first.files_new) == (100, 100, 100)
    second = index_landing(str(root), catalogue)
    assert (second.files_listed, second.headers_read, second.files_gone) == (100, 0, 0)
    _archive(root, studies=1, files=5, seed=100)
    third = index_landing(str(root), catalogue)
    assert (third.headers_read, third.files_new, third.files_changed) == (5, 5, 0)
    assert catalogue.landing_study_count(scopes_of(str(root))) == 21


def test_changed_files_are_read_again_and_vanished_ones_marked_gone(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    root = tmp_path / "landing"
    _archive(root, studies=2, files=3)
    index_landing(str(root), catalogue)
    changed = next((root / "s0").iterdir())
    changed.write_bytes(changed.read_bytes()[:200])  # truncated: now unreadable
    shutil.rmtree(root / "s1")
    stats = index_landing(str(root), catalogue)
    assert (stats.headers_read, stats.files_changed, stats.files_gone) == (1, 1, 3)
    assert stats.unreadable == 1
    with catalogue.engine.connect() as connection:
        rows = {r.uri: r for r in connection.execute(select(LandingFile))}
    assert rows[str(changed)].study_uid is None and rows[str(changed)].size == 200
    assert sum(1 for r in rows.values() if r.gone_at is not None) == 3
    (stray,) = catalogue.landing_unidentified(scopes_of(str(root)))
    assert stray.uri == str(changed)  # named by its content: it has no SOP UID any more
    assert stray.file_key == hashlib.sha256(changed.read_bytes()).hexdigest()[:32]
    kept = rows[str(next(p for p in (root / "s0").iterdir() if p != changed))]
    assert kept.file_key == kept.sop_uid  # a file with a valid UID is keyed without a read
    # a file that comes back is read again and is no longer gone
    _archive(root, studies=1, files=3, seed=1)
    back = index_landing(str(root), catalogue)
    assert (back.files_changed, back.files_gone) == (3, 0)


def test_a_touched_file_with_the_same_size_is_read_again(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    root = tmp_path / "landing"
    _archive(root, studies=1, files=2)
    index_landing(str(root), catalogue)
    path = next((root / "s0").iterdir())
    os.utime(path, (1_700_000_000, 1_700_000_000))
    assert index_landing(str(root), catalogue).files_changed == 1


def test_dcmtier_discover_prints_one_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "landing"
    _archive(root, studies=3, files=2)
    argv = ["discover", str(root), "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    keys = {"files_listed", "headers_read", "files_new", "files_changed", "files_gone",
            "studies", "seconds"}  # fmt: skip
    assert keys <= set(first)
    assert (first["headers_read"], first["studies"]) == (6, 3)
    assert (second["headers_read"], second["files_listed"]) == (0, 6)
    assert main(["discover", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 2
