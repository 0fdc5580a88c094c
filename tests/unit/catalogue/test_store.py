"""The catalogue API on SQLite, fed by real ``process_study`` runs on generated studies."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select
from sqlalchemy.orm import Session

from dcmtier.catalogue import Catalogue, CatalogueError, JobContext
from dcmtier.catalogue.models import FailureRecord, Instance, Job
from dcmtier.discovery.files import discover
from dcmtier.discovery.plan import PlanRequest, plan
from dcmtier.measure import gates
from dcmtier.measure.gates import Gate
from dcmtier.orchestration.items import prepare_layers, run_pair
from dcmtier.records import Study
from dcmtier.sample import write_ct_series
from dcmtier.tiers import get_tier
from tests.integration.catalogue_cases import (
    KEEP,
    LAYERED_ENCODING,
    LAYERED_TIERS,
    TABLES,
    TIERS,
    assert_lineage_names_strategy_and_layer,
    assert_medians,
    assert_views_match_disk,
    encodings,
    make_landing,
    record_synthetic,
    run_all,
    synthetic_result,
    view,
)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    make_landing(root)
    return root


def test_a_run_fills_every_table_and_the_same_run_again_changes_no_count(
    catalogue: Catalogue, landing: Path, tmp_path: Path
) -> None:
    run_all(landing, tmp_path / "out", catalogue, run_id="first")
    counts = catalogue.row_counts()
    # no stray file in this landing, `process` plans nothing (no index, no claims), publishes
    # nothing and checks no viewer
    assert set(counts) == {*TABLES, "unidentified_files", "landing_files", "claims",
                           "publications", "viewer_checks", "estimates"}  # fmt: skip
    assert all(counts[t] > 0 for t in TABLES), counts
    assert counts["instances"] == 6 and counts["derived_instances"] == 5 * len(TIERS)
    run_all(landing, tmp_path / "out", catalogue, run_id="first")
    assert catalogue.row_counts() == counts
    views = {v: view(catalogue, v) for v in ("savings_by_tier", "quality_by_tier", "failures")}
    run_all(landing, tmp_path / "out", catalogue, run_id="second")
    assert catalogue.row_counts() == {**counts, "jobs": counts["jobs"] + 2 * len(TIERS)}
    assert {r["run_id"] for r in view(catalogue, "lineage")} == {"second"}
    for name, rows in views.items():
        if name != "failures":  # its last_seen moves on
            assert view(catalogue, name) == rows


def test_the_views_equal_the_files_on_disk(catalogue: Catalogue, tmp_path: Path) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    broken = make_landing(landing)
    run_all(landing, out, catalogue)
    assert_views_match_disk(catalogue, landing, out, broken)


def test_lineage_names_the_strategy_and_layer_that_made_each_instance(
    catalogue: Catalogue, landing: Path, tmp_path: Path
) -> None:
    assert_lineage_names_strategy_and_layer(catalogue, landing, tmp_path / "out")


def test_the_dag_tasks_record_the_strategy_and_layer_of_each_tier(
    catalogue: Catalogue, landing: Path, tmp_path: Path
) -> None:
    """What airflow_tasks' discover, encode and compress tasks call, one study x tier a task."""
    out = tmp_path / "out"
    request = PlanRequest(landing=str(landing), output=out, tiers=list(LAYERED_TIERS),
                          run_id="dag", now=datetime.now(UTC), settle_seconds=0)  # fmt: skip
    planned = plan(request, catalogue)
    assert len(planned.studies) == 2 and planned.tiers == list(LAYERED_TIERS)
    url = catalogue.engine.url.render_as_string(hide_password=False)
    for study_uid in planned.studies:
        prepare_layers(study_uid, output=out, run_id="dag", catalogue_url=url)
    pairs = [(s, t) for s in planned.studies for t in planned.tiers]  # the DAG's cross product
    for index, (study_uid, tier) in enumerate(pairs):
        context = JobContext("dicom_archive_compression", "dag", "compress", index, 1)
        assert run_pair(
            study_uid, tier, output=out, context=context, catalogue_url=url,
            on_gate_failure="keep",
        )  # fmt: skip
    expected = {tier: {pair} for tier, pair in LAYERED_ENCODING.items()}
    assert encodings(catalogue, "lineage") == expected
    assert len(view(catalogue, "lineage")) == 5 * len(LAYERED_TIERS)


def test_the_psnr_median_is_exact_and_keeps_infinity(catalogue: Catalogue, tmp_path: Path) -> None:
    record_synthetic(catalogue, tmp_path / "landing")
    assert_medians(catalogue)


def test_a_repaired_file_resolves_its_failure_and_joins_the_package(
    catalogue: Catalogue, landing: Path, tmp_path: Path
) -> None:
    run_all(landing, tmp_path / "out", catalogue)
    (failed,) = {f["file"] for f in view(catalogue, "failures")}
    broken = landing / "a" / "CT0002.dcm"
    assert failed == dcmread(broken, stop_before_pixels=True).SOPInstanceUID  # its file key
    assert [r["uri"] for r in catalogue.locate([failed])] == [broken.absolute().as_uri()]
    write_ct_series(landing / "a", slices=3, rows=64, columns=64, seed=11)  # the same, whole
    run_all(landing, tmp_path / "out", catalogue, run_id="repaired")
    assert view(catalogue, "failures") == []
    assert catalogue.row_counts()["derived_instances"] == 6 * len(TIERS)
    assert {p["member_count"] for p in view(catalogue, "packages")} == {3}
    with Session(catalogue.engine) as session:
        records = session.scalars(select(FailureRecord)).all()
    assert len(records) == len(TIERS) and all(r.resolved_at is not None for r in records)
    assert records[0].resolved_at is not None and records[0].resolved_at.tzinfo == UTC


def test_a_kept_gate_failure_is_recorded_then_cleared_by_a_passing_retry(
    catalogue: Catalogue, landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setitem(gates.DEFAULT_GATES, "review", Gate(min_psnr_db=99.0))  # j2k-r10's band
        run_all(landing, tmp_path / "out", catalogue, run_id="strict", policy=KEEP)
    gated = {r["tier"]: r["gate_failures"] for r in view(catalogue, "quality_by_tier")}
    assert gated == {"j2k-lossless": 0, "j2k-r10": 5, "htj2k-r10": 5}
    assert len(view(catalogue, "packages")) == 2 * len(TIERS)  # kept, flagged: packaged too
    assert sum(f["status"] == "gate_failed" for f in view(catalogue, "failures")) == 10
    run_all(landing, tmp_path / "out", catalogue, run_id="default-gates")
    gated = {r["tier"]: r["gate_failures"] for r in view(catalogue, "quality_by_tier")}
    assert gated == {"j2k-lossless": 0, "j2k-r10": 0, "htj2k-r10": 0}
    assert len(view(catalogue, "packages")) == 2 * len(TIERS)
    assert {f["status"] for f in view(catalogue, "failures")} == {"failed"}


def test_an_infrastructure_error_fails_the_attempts_and_is_raised(
    catalogue: Catalogue, landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_storage(*_args: object, **_kwargs: object) -> None:
        raise OSError("derived storage is not writable")

    with monkeypatch.context() as patch:
        patch.setattr("dcmtier.work.study.run_batch", broken_storage)
        with pytest.raises(OSError, match="not writable"):
            run_all(landing, tmp_path / "out", catalogue, run_id="broken")
    (study_uid,) = {r["study_uid"] for r in view(catalogue, "jobs")}
    status = catalogue.pair_status([study_uid], TIERS)
    assert status == {(study_uid, t): "failed" for t in TIERS}
    failures = view(catalogue, "failures")
    assert {(f["sop_uid"], f["file"], f["reason"]) for f in failures} == {
        (None, None, "OSError: derived storage is not writable")
    }
    run_all(landing, tmp_path / "out", catalogue, run_id="retried")
    reasons = {f["reason"] for f in view(catalogue, "failures")}
    assert reasons and "OSError: derived storage is not writable" not in reasons
    assert set(catalogue.pair_status([study_uid], TIERS).values()) == {"partial"}


def test_pair_status_gives_the_latest_attempt_per_study_and_tier(
    catalogue: Catalogue, landing: Path, tmp_path: Path
) -> None:
    studies, _ = discover([landing])
    uids = [s.uid for s in studies]
    assert catalogue.pair_status(uids, TIERS) == {}
    run_all(landing, tmp_path / "out", catalogue, tiers=["j2k-lossless"])
    status = catalogue.pair_status(uids, [*TIERS, "j2k-r1000"])
    assert sorted(status.values()) == ["ok", "partial"]
    assert {tier for _, tier in status} == {"j2k-lossless"}
    retry = JobContext("dcmtier", "manual", "process", 0, 2)
    job = catalogue.start_job(uids[0], get_tier("j2k-lossless"), retry, {})
    assert catalogue.pair_status(uids[:1], ["j2k-lossless"]) == {
        (uids[0], "j2k-lossless"): "running"
    }
    assert catalogue.start_job(uids[0], get_tier("j2k-lossless"), retry, {}) == job  # same try


def test_sources_are_recorded_from_headers_without_patient_identity(
    catalogue: Catalogue, landing: Path, tmp_path: Path
) -> None:
    (study, *_), _ = discover([landing])
    first = study.files[0]
    staged = Study(study.uid, study.files, study.sop_uids, {first: "s3://archive/a/CT0001.dcm"})
    catalogue.record_study(staged)
    catalogue.record_study(staged)
    with Session(catalogue.engine) as session:
        rows = {r.sop_uid: r for r in session.scalars(select(Instance))}
    assert len(rows) == 3
    row = rows[study.sop_uids[first]]
    located = catalogue.locate([row.sop_uid])  # the one table that says where a file was
    assert [r["uri"] for r in located] == ["s3://archive/a/CT0001.dcm"]
    assert row.bytes == os.path.getsize(first)
    assert row.sha256 == hashlib.sha256(first.read_bytes()).hexdigest()
    assert (row.modality, row.rows, row.columns, row.frames) == ("CT", 64, 64, 1)
    assert row.discovered_at.tzinfo == UTC
    database = Path(str(catalogue.engine.url.database)).read_bytes()
    assert b"SAMPLE^CT" not in database  # the generator's patient name and ID


def test_misuse_is_refused_with_what_to_do(catalogue: Catalogue, landing: Path) -> None:
    (study, *_), _ = discover([landing])
    tier = get_tier("j2k-r5")
    with pytest.raises(CatalogueError, match="call record_study first"):
        catalogue.start_job(study.uid, tier, JobContext.cli("r"), {})
    catalogue.record_study(study)
    job = catalogue.start_job(study.uid, tier, JobContext.cli("r"), {"path": Path("/x")})
    result = synthetic_result(study, "j2k-r5", [[40.0]])
    result.results = []  # as after StudyTierResult.as_dict(): no per-instance results
    with pytest.raises(CatalogueError, match="carries no per-instance results"):
        catalogue.finish_job(job, result)
    with pytest.raises(CatalogueError, match=r"is study .* tier j2k-r5, not study .* tier j2k-r10"):
        catalogue.finish_job(job, synthetic_result(study, "j2k-r10", [[40.0]]))
    unknown = synthetic_result(study, "j2k-r5", [[40.0]])
    unknown.results[0].params = {"strategy": "layered"}  # a layered cut names its layer
    with pytest.raises(CatalogueError, match=r"strategy 'layered', layer None; .* integer layer"):
        catalogue.finish_job(job, unknown)
    with pytest.raises(CatalogueError, match="no job 999"):
        catalogue.fail_job(999, "boom")
    with Session(catalogue.engine) as session:
        assert session.get(Job, job).parameters == {"path": "/x"}  # type: ignore[union-attr]


def test_the_unit_of_work_without_a_catalogue_does_not_load_sqlalchemy() -> None:
    code = "import sys, dcmtier.work.study; sys.exit('sqlalchemy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
