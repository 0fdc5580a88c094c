"""The unit of work on generated studies: outputs, quarantine, Parquet, ZIP, and reruns."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from dcmtier.cli import main
from dcmtier.codec.policy import Policy
from dcmtier.discovery.files import discover
from dcmtier.measure import gates
from dcmtier.measure.gates import Gate
from dcmtier.measure.store import read_dataset
from dcmtier.records import StudyTierResult
from dcmtier.sample import write_ct_series
from dcmtier.tiers import resolve_tiers
from dcmtier.work.config import RunConfig
from dcmtier.work.layout import Layout
from dcmtier.work.study import process_study
from tests.support import reference_file

TIERS = ("j2k-lossless", "j2k-r20", "htj2k-r20")
VARYING = ("encode_ms", "decode_ms", "run_id", "computed_at")  # per-run by nature


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    """Two generated studies (one holding a truncated slice), a real MR, and a stray file."""
    root = tmp_path / "landing"
    write_ct_series(root / "a", slices=4, rows=128, columns=128, seed=1)
    write_ct_series(root / "b", slices=3, rows=128, columns=128, seed=2, signed=False)
    broken = root / "a" / "CT0002.dcm"
    broken.write_bytes(broken.read_bytes()[:-5000])  # header intact, pixel data cut short
    shutil.copy(reference_file("MR_small.dcm"), root / "mr.dcm")
    (root / "notes.txt").write_text("not DICOM\n")
    return root


def _run(
    landing: Path, out: Path, run_id: str = "test-run", policy: Policy | None = None
) -> list[StudyTierResult]:
    studies, unidentified = discover([landing])
    assert [u.path.name for u in unidentified] == ["notes.txt"]
    results = []
    for study in studies:
        results += process_study(
            study,
            resolve_tiers(list(TIERS)),
            RunConfig(Layout(out), run_id, policy=policy or Policy()),
        )
    return results


KEEP = Policy().with_gate_action("keep")  # each frame stays at its own tier's encode


def test_each_study_and_tier_completes_and_the_broken_slice_is_quarantined(
    landing: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    results = _run(landing, out)
    assert len(results) == 3 * len(TIERS)
    broken_study = next(r.study_uid for r in results if r.status == "partial")
    for r in results:
        expected = "partial" if r.study_uid == broken_study else "ok"
        assert r.status == expected, r.as_dict()
    partial = [r for r in results if r.status == "partial"]
    assert all(r.counts == {"failed": 1, "ok": 3} for r in partial)
    reasons = list((out / "quarantine" / broken_study).glob("*.reason.json"))
    assert len(reasons) == 1
    record = json.loads(reasons[0].read_text())
    broken_uid = next(f["sop_uid"] for r in partial for f in r.failures)
    assert record["file_key"] == broken_uid and record["copy"] == f"{broken_uid}.dcm"
    assert record["reason"].startswith(f"{broken_uid}: pixel data cannot be decoded")
    assert "CT0002" not in reasons[0].read_text() and str(landing) not in reasons[0].read_text()
    assert set(record["tiers"]) == set(TIERS)
    assert (out / "quarantine" / broken_study / record["copy"]).is_file()
    assert sorted(p.name for p in (out / "derived").iterdir()) == sorted(TIERS)


def test_quality_rows_cover_every_frame_and_read_as_one_dataset(
    landing: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    results = _run(landing, out, policy=KEEP)  # the rates as coded, each frame measured
    # 128x128 slices at 20:1 break the review gate against their range (seed 1: SSIM < 0.975)
    kept = sum(r.counts.get("ok", 0) + r.counts.get("gate_failed", 0) for r in results)
    table = read_dataset(out / "quality")
    assert table.num_rows == kept  # single-frame instances: one row each
    query = f"""
        SELECT tier, count(*) AS frames, min(psnr_db) AS psnr, max(max_abs_diff) AS worst,
               sum(pixel_bytes_in) / sum(pixel_bytes_out) AS ratio
        FROM read_parquet('{out}/quality/**/*.parquet', hive_partitioning = true,
                          hive_types = {{'tier': VARCHAR, 'study': VARCHAR}})
        GROUP BY tier ORDER BY tier"""
    rows = {r[0]: r[1:] for r in duckdb.sql(query).fetchall()}
    assert set(rows) == set(TIERS)
    assert rows["j2k-lossless"][1] == float("inf")
    assert rows["j2k-lossless"][2] == 0
    assert rows["j2k-r20"][1] < 80
    assert rows["j2k-r20"][3] == pytest.approx(20, rel=0.05)
    schema = pq.read_schema(next((out / "quality").rglob("*.parquet")))
    assert schema.field("psnr_db").metadata[b"unit"] == b"dB"


def test_packages_hold_the_ok_outputs_with_checksums(landing: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = _run(landing, out)
    for r in results:
        assert r.package is not None
        with zipfile.ZipFile(r.package) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            members = [n for n in zf.namelist() if n != "manifest.json"]
            assert len(members) == r.counts["ok"]
            assert manifest["study_uid"] == r.study_uid
            assert manifest["tier"] == r.tier
            for entry in manifest["members"]:
                data = zf.read(entry["name"])
                assert hashlib.sha256(data).hexdigest() == entry["sha256"]
                assert len(data) == entry["bytes"]


def test_a_second_run_changes_nothing(landing: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _run(landing, out, run_id="first")
    files_before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rows_before = read_dataset(out / "quality").drop_columns(list(VARYING)).to_pylist()
    second = _run(landing, out, run_id="second")
    files_after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert files_after.keys() == files_before.keys()
    for path, data in files_before.items():
        if path.suffix != ".parquet":
            assert files_after[path] == data, path
    rows_after = read_dataset(out / "quality").drop_columns(list(VARYING)).to_pylist()
    key = lambda r: (r["tier"], r["source_sop_uid"], r["frame"])  # noqa: E731
    assert sorted(rows_after, key=key) == sorted(rows_before, key=key)
    assert [r.package_sha256 for r in first] == [r.package_sha256 for r in second]


def test_a_frame_that_breaks_its_gate_is_kept_and_flagged_with_keep(
    landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(gates.DEFAULT_GATES, "review", Gate(min_psnr_db=99.0))
    out = tmp_path / "out"
    results = [r for r in _run(landing, out, policy=KEEP) if r.tier == "j2k-r20"]
    assert all(r.status in ("ok", "partial") for r in results)  # partial: the broken slice
    assert all(r.counts.get("gate_failed") for r in results)
    failure = next(f for r in results for f in r.failures if f["status"] == "gate_failed")
    assert "PSNR" in failure["rule"] and "< 99 dB" in failure["rule"]
    table = read_dataset(out / "quality").to_pylist()
    gated = [row for row in table if row["tier"] == "j2k-r20"]
    assert gated and all(row["gate"] and "< 99 dB" in row["gate"] for row in gated)
    assert all(row["gate_action"] == "keep" and not row["fell_back"] for row in gated)
    assert all(r.package is not None for r in results)  # kept: packaged, flagged
    assert all(r.gate_outcomes == {"keep": r.counts["gate_failed"]} for r in results)


def test_process_command_reports_json_and_exits_1_on_partial(
    landing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["process", str(landing), "--out", str(tmp_path / "o"), "--tier", "j2k-r20",
                 "--json", "--jobs", "2", "--run-id", "cli-test"])  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    notes_key = hashlib.sha256((landing / "notes.txt").read_bytes()).hexdigest()[:32]
    assert lines[0]["status"] == "skipped" and lines[0]["source"] == notes_key
    statuses = sorted(line["status"] for line in lines[1:])
    assert statuses == ["ok", "ok", "partial"]
    assert all(line["run_id"] == "cli-test" for line in lines[1:])


def test_layered_rate_tiers_come_from_one_encode_that_tier_tasks_share(
    landing: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    study = next(s for s in discover([landing])[0] if len(s.files) == 4)
    tiers = resolve_tiers(["j2k-lossless", "j2k-r20", "j2k-r100"])
    results = process_study(
        study, tiers, RunConfig(Layout(out), "all", strategy="layered", policy=KEEP)
    )
    rows = read_dataset(out / "quality").to_pylist()
    assert {(r["tier"], r["strategy"]) for r in rows} == {
        ("j2k-lossless", "per_tier"), ("j2k-r20", "layered"), ("j2k-r100", "layered")}  # fmt: skip
    by_tier = {r.tier: r for r in results}
    r20 = [x for x in by_tier["j2k-r20"].results if x.status in ("ok", "gate_failed")]
    assert [x.params["layer"] for x in r20] == [2, 2, 2]  # r100 is layer 1 of 2
    encodes = sum(x.encodes or 0 for x in by_tier["j2k-r100"].results)
    assert 3 <= encodes <= 3 * 2  # one layered encode per instance, at most one correction
    assert sum(x.encodes or 0 for x in by_tier["j2k-r20"].results) == 0  # counted once
    cached = list((out / "cache" / "layered" / study.uid).glob("*.j2c"))
    assert len(cached) == 3  # the truncated slice has no codestream
    # a DAG tier task makes one tier of the run: it cuts from the cache, encoding nothing
    task = RunConfig(
        Layout(out), "retry", strategy="layered", layer_tiers=tuple(tiers), policy=KEEP
    )
    (alone,) = process_study(study, [tiers[1]], task)
    assert alone.status == "partial" and alone.counts == {"failed": 1, "gate_failed": 3}
    assert sum(x.encodes or 0 for x in alone.results) == 0
    assert [x.sop_instance_uid_out for x in alone.results] == [
        x.sop_instance_uid_out for x in by_tier["j2k-r20"].results
    ]
