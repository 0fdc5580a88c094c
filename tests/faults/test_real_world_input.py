"""A landing area like a real archive's runs to the end: every other study is processed and
each problem is one result for that file or instance alone, with a one-line reason."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from dcmtier.catalogue import Catalogue
from dcmtier.cli import main
from dcmtier.sample import write_ct_series
from tests.faults.messy import Messy, messy_landing
from tests.support import openjpeg_frames

TIERS = ("j2k-lossless", "htj2k-lossless")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Messy, Path, list[dict], str]:
    base = tmp_path_factory.mktemp("messy")
    messy = messy_landing(base / "landing")
    out = base / "out"
    argv = ["process", str(messy.root), "--out", str(out), "--json", "--jobs", "1"]
    for tier in TIERS:
        argv += ["--tier", tier]
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    assert code == 1  # partial studies: something failed, and the run still finished
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    return messy, out, lines, stderr.getvalue()


def _study(lines: list[dict], uid: str) -> dict[str, dict]:
    return {line["tier"]: line for line in lines if line.get("study_uid") == uid}


def test_every_study_is_processed_and_nothing_prints_a_traceback(run: tuple) -> None:
    messy, _, lines, stderr = run
    assert "Traceback" not in stderr
    for uid in (messy.clean_study, messy.hex_study, messy.scanner_study):
        assert {t: r["status"] for t, r in _study(lines, uid).items()} == dict.fromkeys(TIERS, "ok")
    mixed = _study(lines, messy.mixed_study)
    assert {r["status"] for r in mixed.values()} == {"partial"}


def test_a_dicomdir_and_a_text_file_are_skipped_with_a_reason(run: tuple) -> None:
    messy, out, lines, _ = run
    skipped = {line["source"]: line["reason"] for line in lines if "tier" not in line}
    dicomdir, readme = (_key(messy.root / name) for name in ("DICOMDIR", "README.txt"))
    assert set(skipped) == {dicomdir, readme}  # named by content key, never by file name
    assert skipped[dicomdir] == f"{dicomdir}: a DICOMDIR (the directory of a medium, not an " \
        "instance): skipped"  # fmt: skip
    assert skipped[readme] == f"{readme}: not a DICOM file (no DICM prefix): skipped"
    assert all(line["status"] == "skipped" for line in lines if "tier" not in line)
    assert not (out / "quarantine" / "_unidentified").exists()  # no fault, nothing quarantined


def test_each_bad_instance_fails_alone_once_per_tier_with_a_one_line_reason(run: tuple) -> None:
    messy, _, lines, _ = run
    for tier, result in _study(lines, messy.mixed_study).items():
        by_sop: dict[str, list[dict]] = {}
        for failure in result["failures"]:
            assert "\n" not in failure["reason"] and "Traceback" not in failure["reason"]
            assert failure["reason"].startswith(failure["sop_uid"] + ": "), failure
            by_sop.setdefault(failure["sop_uid"], []).append(failure)
        assert "invalid input: Rows 0" in by_sop[messy.rows_zero_sop][0]["reason"]
        assert "RescaleSlope 0" in by_sop[messy.slope_zero_sop][0]["reason"]
        (duplicate,) = by_sop[messy.duplicate_sop]
        assert duplicate["status"] == "duplicate" and "made once" in duplicate["reason"]
        conflict = by_sop[messy.conflict_sop]
        assert [f["status"] for f in conflict] == ["failed", "failed"]
        assert all("conflict" in f["reason"] for f in conflict)
        # 8 slices + a re-sent copy + a clash = 10 files: 5 made, 4 failed, 1 duplicate
        assert result["counts"] == {"duplicate": 1, "failed": 4, "ok": 5}, tier


def test_invalid_uids_are_kept_and_recorded_as_found(run: tuple) -> None:
    messy, out, _, _ = run
    for tier in TIERS:
        package = out / "packages" / messy.hex_study / f"{tier}.zip"
        with zipfile.ZipFile(package) as zf:
            manifest = json.loads(zf.read("manifest.json"))
        assert manifest["study_uid"] == messy.hex_study
        assert len(manifest["members"]) == 4
        assert all(
            re.fullmatch(r"[0-9a-f]{64}/[0-9a-f]{64}\.dcm", m["name"]) for m in manifest["members"]
        )
    catalogue = Catalogue.connect(f"sqlite:///{out / 'catalogue.db'}")
    with catalogue.engine.connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT count(*) FROM instances WHERE study_uid = ?", (messy.hex_study,)
        ).scalar_one()
        duplicates = connection.exec_driver_sql(
            "SELECT count(*) FROM failures WHERE status = 'duplicate'"
        ).scalar_one()
    assert found == 4 and duplicates == 2 * len(TIERS)  # the re-sent slice and the RLE copy


def test_a_real_instance_sent_again_in_another_transfer_syntax_is_made_once(run: tuple) -> None:
    messy, out, lines, _ = run
    for tier, result in _study(lines, messy.scanner_study).items():
        assert result["counts"] == {"duplicate": 1, "ok": 1}, tier
        (duplicate,) = result["failures"]
        assert duplicate["sop_uid"] == messy.scanner_sop and duplicate["status"] == "duplicate"
        package = out / "packages" / messy.scanner_study / f"{tier}.zip"
        with zipfile.ZipFile(package) as zf:
            (member,) = json.loads(zf.read("manifest.json"))["members"]
        assert member["source_sop_uid"] == messy.scanner_sop


def test_values_above_bits_stored_are_kept_bit_for_bit_and_said_so(
    run: tuple, tmp_path: Path
) -> None:
    messy, out, _, _ = run
    (output,) = (out / "derived" / "j2k-lossless" / messy.mixed_study).rglob(
        f"{messy.above_bits_sop}.dcm"
    )
    ds = dcmread(output)
    assert int(ds.BitsStored) == 13 and int(ds.HighBit) == 12  # the header says so
    (frame,) = openjpeg_frames(output, tmp_path)  # an independent decoder
    assert np.array_equal(frame, messy.above_bits_values)
    assert int(frame.max()) == 5000  # not masked to 904
    catalogue = Catalogue.connect(f"sqlite:///{out / 'catalogue.db'}")
    with catalogue.engine.connect() as connection:
        bits = connection.exec_driver_sql(
            "SELECT tier, bits_stored FROM derived_instances WHERE source_sop_uid = ?",
            (messy.above_bits_sop,),
        ).all()
    assert dict(bits) == {"j2k-lossless": 13, "htj2k-lossless": 16}  # OpenJPH codes 16
    psnr = [r for r in _quality(out) if r["source_sop_uid"] == messy.above_bits_sop]
    assert psnr and all(r["psnr_db"] == float("inf") for r in psnr)  # against the values as stored


def _key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


def _quality(out: Path) -> list[dict]:
    from dcmtier.measure.store import read_dataset

    return list(read_dataset(out / "quality").to_pylist())


def test_one_bad_instance_of_twelve_leaves_an_eleven_member_package(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "landing", slices=12, rows=32, columns=32, seed=5)
    bad = dcmread(files[6])
    bad.RescaleSlope = 0
    bad.save_as(files[6])
    out = tmp_path / "out"
    assert main(["process", str(tmp_path / "landing"), "--out", str(out), "--tier",
                 "j2k-lossless", "--json", "--no-catalogue"]) == 1  # fmt: skip
    (package,) = (out / "packages").rglob("j2k-lossless.zip")
    with zipfile.ZipFile(package) as zf:
        members = json.loads(zf.read("manifest.json"))["members"]
    assert len(members) == 11
    assert str(bad.SOPInstanceUID) not in {m["source_sop_uid"] for m in members}
    (reason,) = (out / "quarantine").rglob("*.reason.json")
    assert json.loads(reason.read_text())["reason"].startswith(f"{bad.SOPInstanceUID}: ")
