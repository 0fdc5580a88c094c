"""A study x tier's output is the whole study as known: processing part of a study keeps the
rest of its package, and no derived file stays outside a package and the records."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmtier.catalogue import Catalogue
from dcmtier.cli import main
from dcmtier.discovery.files import discover
from dcmtier.measure.store import read_dataset
from dcmtier.records import Study
from dcmtier.sample import write_ct_series
from dcmtier.tiers import resolve_tiers
from dcmtier.work.config import RunConfig
from dcmtier.work.layout import Layout
from dcmtier.work.study import process_study

TIERS = resolve_tiers(["j2k-lossless", "htj2k-lossless"])


def _members(package: Path) -> list[dict]:
    with zipfile.ZipFile(package) as zf:
        return list(json.loads(zf.read("manifest.json"))["members"])


def _one_file(study: Study, path: Path) -> Study:
    return Study(study.uid, (path,), {path: study.sop_uids[path]})


def _catalogue(tmp_path: Path) -> Catalogue:
    url = f"sqlite:///{tmp_path / 'catalogue.db'}"
    Catalogue.upgrade(url)
    return Catalogue.connect(url)


def test_one_file_processed_into_an_existing_twelve_file_study_keeps_twelve_members(
    tmp_path: Path,
) -> None:
    write_ct_series(tmp_path / "landing", slices=12, rows=64, columns=64, seed=3)
    (study,), _ = discover([tmp_path / "landing"])
    out, catalogue = Layout(tmp_path / "out"), _catalogue(tmp_path)
    first = process_study(study, TIERS, RunConfig(out, "all", catalogue=catalogue))
    again = process_study(
        _one_file(study, study.files[4]), TIERS, RunConfig(out, "one", catalogue=catalogue)
    )
    for before, after in zip(first, again, strict=True):
        assert after.status == "ok" and after.counts == {"carried": 11, "ok": 1}
        assert len(_members(Path(str(after.package)))) == 12
        assert {m["sha256"] for m in _members(Path(str(after.package)))} == {
            m["sha256"] for m in _members(Path(str(before.package)))
        }
    rows = read_dataset(out.quality).to_pylist()
    assert len(rows) == 12 * len(TIERS)
    assert {r["run_id"] for r in rows} == {"all", "one"}  # carried rows keep their attempt
    with catalogue.engine.connect() as connection:
        derived = connection.exec_driver_sql("SELECT count(*) FROM derived_instances").scalar()
        members = connection.exec_driver_sql("SELECT member_count FROM packages").scalars()
        frames = connection.exec_driver_sql("SELECT count(*) FROM frame_quality").scalar()
        assert derived == 12 * len(TIERS) and frames == 12 * len(TIERS)
        assert set(members) == {12}


def test_a_changed_or_missing_derived_file_is_restored_from_the_package(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "landing", slices=3, rows=32, columns=32, seed=4)
    (study,), _ = discover([tmp_path / "landing"])
    out = Layout(tmp_path / "out")
    (first,) = process_study(study, TIERS[:1], RunConfig(out, "all"))
    derived = sorted((out.derived / "j2k-lossless").rglob("*.dcm"))
    originals = {p: p.read_bytes() for p in derived}
    derived[0].unlink()
    derived[1].write_bytes(b"tampered")
    (again,) = process_study(_one_file(study, study.files[2]), TIERS[:1], RunConfig(out, "one"))
    assert again.counts == {"carried": 2, "ok": 1}
    assert {p: p.read_bytes() for p in derived} == originals
    assert again.package_sha256 == first.package_sha256


def test_derived_files_outside_the_package_are_removed(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "landing", slices=3, rows=32, columns=32, seed=6)
    (study,), _ = discover([tmp_path / "landing"])
    out = Layout(tmp_path / "out")
    process_study(study, TIERS[:1], RunConfig(out, "all"))
    stray = out.derived / "j2k-lossless" / study.uid / "1.2.3" / "1.2.3.4.dcm"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"left by an earlier version")
    broken = dcmread(files[0])
    broken.RescaleSlope = 0  # the instance now fails: its earlier output must go
    broken.save_as(files[0])
    (again,) = process_study(study, TIERS[:1], RunConfig(out, "again"))
    assert again.status == "partial" and again.counts == {"failed": 1, "ok": 2}
    left = sorted(p.name for p in (out.derived / "j2k-lossless").rglob("*.dcm"))
    assert left == sorted(m["name"].split("/")[1] for m in _members(Path(str(again.package))))
    assert not stray.parent.exists()


def test_dcmtier_process_of_one_file_into_an_existing_study_keeps_the_whole_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_ct_series(tmp_path / "landing", slices=12, rows=32, columns=32, seed=7)
    out = tmp_path / "out"
    argv = ["--out", str(out), "--tier", "j2k-lossless", "--json"]
    assert main(["process", str(tmp_path / "landing"), *argv]) == 0
    assert main(["process", str(files[4]), *argv]) == 0
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()[1:]]
    assert line["status"] == "ok" and line["counts"] == {"carried": 11, "ok": 1}
    (package,) = (out / "packages").rglob("j2k-lossless.zip")
    assert len(_members(package)) == 12
    assert len(list((out / "derived").rglob("*.dcm"))) == 12  # every one in the package
    with sqlite3.connect(out / "catalogue.db") as connection:
        (count,) = connection.execute("SELECT member_count FROM packages").fetchone()
        (saved,) = connection.execute("SELECT instances FROM savings_by_tier").fetchone()
    assert count == 12 and saved == 12
