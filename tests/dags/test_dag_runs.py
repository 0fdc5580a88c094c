"""Whole DAG runs through ``dag.test()`` on generated studies, with the embedded defaults."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag

from dcmtier.sample import write_ct_series
from dcmtier.viewer.node import ViewerUnavailable, check_installed, node_binary
from tests.support import skip_or_fail

DAG_ID = "dicom_archive_compression"
DAGS = Path(__file__).resolve().parents[2] / "dags"
TIERS = ["j2k-lossless", "j2k-r20"]


@pytest.fixture
def landing_with_faults(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    write_ct_series(root / "one", slices=3, rows=128, columns=128, seed=11)
    write_ct_series(root / "two", slices=2, rows=128, columns=128, seed=12, signed=False)
    broken = root / "one" / "CT0002.dcm"
    broken.write_bytes(broken.read_bytes()[:-3000])  # header readable, pixel data cut short
    (root / "notes.txt").write_text("not DICOM\n")  # skipped: not a DICOM file
    (root / "stray.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")  # no study: failed
    return root


def _run(landing: Path, output: Path, **conf: Any) -> Any:
    dag = DagBag(dag_folder=str(DAGS)).dags[DAG_ID]
    run_conf = {"landing": str(landing), "output": str(output), "tiers": TIERS,
                "settle_seconds": 0, **conf}  # fmt: skip
    return dag.test(run_conf=run_conf)


def _query(output: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(output / "catalogue.db") as conn:
        return conn.execute(sql).fetchall()


def _states(run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}


def _xcom(run: Any, task_id: str) -> Any:
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == task_id]
    return ti.xcom_pull(task_ids=task_id)


def test_a_manual_run_compresses_every_study_and_quarantines_the_broken_file(
    airflow_db: Path, landing_with_faults: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    run = _run(landing_with_faults, output)
    states = _states(run)
    assert str(run.state).endswith("success"), states
    compress = {k: v for k, v in states.items() if k[0] == "compress"}
    assert len(compress) == len(TIERS)  # two small studies: one work unit, one task a tier
    assert set(compress.values()) == {"success"}
    # the grid label names the unit, its study count and tier, then what was not clean
    labels = sorted(str(ti.rendered_map_index) for ti in run.get_task_instances()
                    if ti.task_id == "compress")  # fmt: skip
    assert labels == [f"u0000 · 2 studies · {t} · 1 partial" for t in TIERS]
    rows = _query(output, "SELECT tier, studies, instances FROM savings_by_tier ORDER BY tier")
    assert [r[0] for r in rows] == TIERS
    assert all(r[1] == 2 for r in rows)
    notes = hashlib.sha256((landing_with_faults / "notes.txt").read_bytes()).hexdigest()[:32]
    stray = _query(output, "SELECT file, reason FROM failures WHERE study_uid IS NULL")
    stray_bytes = (landing_with_faults / "stray.dcm").read_bytes()
    stray_key = hashlib.sha256(stray_bytes).hexdigest()[:32]
    assert [f for f, _ in stray] == [stray_key]  # named by its content hash
    quarantined = output / "quarantine" / "_unidentified"
    assert (quarantined / f"{stray_key}.reason.json").is_file()
    assert not (quarantined / f"{notes}.reason.json").exists()  # skipped: not DICOM
    located = _query(output, f"SELECT uri FROM file_locations WHERE file_key = '{stray_key}'")
    assert located == [((landing_with_faults / "stray.dcm").as_uri(),)]  # the operators' table
    failures = _query(output, "SELECT tier, sop_uid, reason FROM failures WHERE tier IS NOT NULL")
    assert {f[0] for f in failures} == set(TIERS)  # one row per tier for the broken instance
    assert all(f[2].startswith(f"{f[1]}: pixel data cannot be decoded") for f in failures)
    assert list((output / "quarantine").rglob("*.reason.json"))
    assert len(list((output / "packages").rglob("*.zip"))) == 2 * len(TIERS)
    # the viewer check is off by default: it runs, does nothing and records nothing
    assert states[("viewer_check", -1)] == "success"
    assert _xcom(run, "viewer_check") == {"checked": False,
                                          "reason": "viewer_check_studies is 0 (off)"}  # fmt: skip
    assert _query(output, "SELECT count(*) FROM viewer_checks") == [(0,)]


def test_a_second_run_skips_what_is_done_and_reprocess_all_redoes_it(
    airflow_db: Path, landing_with_faults: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    _run(landing_with_faults, output)
    jobs_before = _query(output, "SELECT count(*) FROM lineage")
    second = _run(landing_with_faults, output)
    assert [k for k in _states(second) if k[0] == "compress" and k[1] >= 0] == []
    assert _query(output, "SELECT count(*) FROM lineage") == jobs_before
    third = _run(landing_with_faults, output, reprocess="all", unit_seconds=0)  # one study a unit
    labels = [str(ti.rendered_map_index) for ti in third.get_task_instances()
              if ti.task_id == "compress"]  # fmt: skip
    assert sorted(label.split(" · ", 2)[1:] for label in labels) == sorted(
        ["1 study", f"{t} · {outcome}"] for t in TIERS for outcome in ("1 ok", "1 partial")
    )
    assert {label.split(" · ")[0] for label in labels} == {"u0000", "u0001"}
    derived = _query(output, "SELECT count(*) FROM lineage")
    assert derived == jobs_before  # replaced, not added


def test_a_run_for_one_study_and_one_tier_makes_exactly_one_new_attempt(
    airflow_db: Path, landing_with_faults: Path, tmp_path: Path
) -> None:
    """An operator's retry: the trigger form's study_uids, tiers and reprocess. A DICOMweb
    connection named for runs that talk to no DICOMweb server is never looked up (this one
    does not exist)."""
    output = tmp_path / "out"
    _run(landing_with_faults, output, dicomweb_conn_id="no_such_connection")
    before = _query(output, "SELECT id, study_uid, tier FROM jobs")
    study = sorted({row[1] for row in before})[0]
    retry = _run(landing_with_faults, output, study_uids=[study], tiers=["j2k-r20"],
                 reprocess="all")  # fmt: skip
    assert str(retry.state).endswith("success")
    labels = [str(ti.rendered_map_index) for ti in retry.get_task_instances()
              if ti.task_id == "compress"]  # fmt: skip
    assert len(labels) == 1 and labels[0].startswith("u0000 · 1 study · j2k-r20 · ")
    new = _query(output, f"SELECT study_uid, tier FROM jobs WHERE id > {max(r[0] for r in before)}")
    assert new == [(study, "j2k-r20")]


def test_a_successful_run_deletes_its_studies_layered_caches(
    airflow_db: Path, landing_with_faults: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    two_rates = ["j2k-r10", "j2k-r20"]  # two rate tiers: a layered encode
    run = _run(landing_with_faults, output, tiers=two_rates)
    states = _states(run)
    assert str(run.state).endswith("success"), states
    assert {v for (task, _), v in states.items() if task == "encode"} == {"success"}
    cache = output / "cache" / "layered"
    assert cache.is_dir()  # the encode task wrote it, the tier tasks cut from it ...
    assert list(cache.iterdir()) == []  # ... and the summary deleted every study's folder
    assert len(list((output / "packages").rglob("*.zip"))) == 2 * 2


def test_a_noisy_ct_whose_r20_breaks_the_review_gate_runs_green_and_packages_both_tiers(
    airflow_db: Path, tmp_path: Path
) -> None:
    """Issue #15: gate results are quality outcomes (fallback by default), never task failures."""
    landing = tmp_path / "landing"
    write_ct_series(landing, slices=24, rows=256, columns=256, noise_hu=50.0)
    output = tmp_path / "out"
    run = _run(landing, output)
    states = _states(run)
    assert str(run.state).endswith("success"), states
    assert {v for k, v in states.items() if k[0] == "compress"} == {"success"}
    assert sorted(_query(output, "SELECT tier, status FROM jobs")) == [
        ("j2k-lossless", "ok"),
        ("j2k-r20", "ok"),
    ]
    assert (
        _query(output, "SELECT fallback_frames FROM quality_by_tier WHERE tier = 'j2k-r20'")[0][0]
        > 0
    )
    assert len(list((output / "packages").rglob("*.zip"))) == len(TIERS)


def test_viewer_check_studies_decodes_that_many_of_the_runs_studies_into_the_catalogue(
    airflow_db: Path, tmp_path: Path
) -> None:
    """Issue #28: the param's studies (the first by UID) of each tier the run made, decoded
    by every viewer, recorded in viewer_checks; XCom holds counts only."""
    try:
        node_binary()
        check_installed()
    except ViewerUnavailable as exc:
        skip_or_fail(str(exc))
    landing = tmp_path / "landing"
    for name, seed, signed in (("a", 21, True), ("b", 22, False)):
        write_ct_series(landing / name, slices=3, rows=128, columns=128, seed=seed, signed=signed)
    output = tmp_path / "out"
    run = _run(landing, output, viewer_check_studies=1)
    states = _states(run)
    assert str(run.state).endswith("success"), states
    assert states[("viewer_check", -1)] == "success"
    assert _xcom(run, "viewer_check") == {
        "checked": True, "studies": 1, "rows": 4, "tiers": 2, "frames": 4 * 3,
        "decodable": 4, "not_decodable": 0, "not_bit_exact": 0,
    }  # fmt: skip
    rows = _query(output, "SELECT tier, viewer, studies, frames, study_frames, decodable, "
                  "bit_exact FROM viewer_checks ORDER BY tier, viewer")  # fmt: skip
    viewers = ["cornerstone-5.14.0", "cornerstone-5.6.8"]
    assert [(r[0], r[1]) for r in rows] == [(t, v) for t in TIERS for v in viewers]
    assert {r[2:5] for r in rows} == {(1, 3, 3)}  # one study of the two, every frame of it
    assert all(r[5] for r in rows)
    assert {r[0]: r[6] for r in rows} == {"j2k-lossless": 1, "j2k-r20": None}
    delivery = _query(output, "SELECT tier, decodable_by FROM delivery_by_tier ORDER BY tier")
    assert [r[0] for r in delivery] == TIERS
    assert all(set(r[1].split(", ")) == set(viewers) for r in delivery), delivery
