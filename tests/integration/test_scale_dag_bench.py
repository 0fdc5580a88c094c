"""``dcmtier bench scale --dag`` at a tiny size: a study_date backfill of 3 studies x 2 tiers over
3 days on the real deployment (scheduler, api-server, dag-processor, Celery workers, PostgreSQL
metadata), so that the benchmark's figures cannot rot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dcmtier.cli import main
from tests.support import skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_the_backfill_bench_reports_its_figures_and_leaves_no_study_behind(
    tmp_path: Path,
) -> None:
    try:
        import psycopg

        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=5).close()
    except Exception as exc:
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 unreachable: {exc}")
    out = tmp_path / "dag.json"
    redis_db = os.environ.get("DCMTIER_TEST_REDIS_DB", "11")
    argv = ["bench", "scale", "--dag", "--backfill-studies", "3", "--backfill-days", "3",
            "--redis-db", redis_db, "--work", str(tmp_path), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    dag = json.loads(out.read_text())["dag"]
    assert dag["runs"] == 3 and dag["run_states"] == ["success"] * 3
    assert dag["pairs_done_once_ok"] == dag["pairs_expected"] == 6
    assert dag["pairs_done_twice"] == 0 and dag["claims_left"] == 0
    # per work unit one encode and two compress: each run's studies (its day's, or the backlog
    # it took first) are one unit; a run whose studies another run took skips its empty
    # expansions
    units = dag["per_task"]["encode"]["success"]
    assert 1 <= units <= 3 and dag["per_task"]["compress"]["success"] == 2 * units
    assert set(dag["ti_states"]) <= {"success", "skipped"}
    assert dag["wall_s"] > 0 and dag["busy_s"] > 0 and dag["overhead_per_ti_s"] > 0
    ran = sum(states.get("success", 0) for states in dag["per_task"].values())
    assert dag["task_instances_run"] == ran == dag["schedulable_to_start_s"]["n"]
    assert dag["metadata"]["after_bytes"] > dag["metadata"]["before_bytes"]
    assert dag["metadata"]["tables_grown_bytes"]["task_instance"] > 0


def test_the_hospital_mix_bench_prints_both_rows_and_units_cut_the_task_instances(
    tmp_path: Path,
) -> None:
    """``--mix hospital`` at 3 studies a row (three radiographs), 13 tiers: the
    ``unit_seconds=0`` row maps one unit a study, the default row one unit in all."""
    out = tmp_path / "mix.json"
    redis_db = os.environ.get("DCMTIER_TEST_REDIS_DB", "11")
    argv = ["bench", "scale", "--dag", "--mix", "hospital", "--mix-studies", "3",
            "--backfill-days", "1", "--redis-db", redis_db, "--work", str(tmp_path),
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    mix = json.loads(out.read_text())["mix"]
    single, units = mix["rows"]["unit_seconds=0"], mix["rows"]["unit_seconds=120"]
    for row in (single, units):
        assert row["run_states"] == ["success"] and row["claims_left"] == 0
        assert row["pairs_done_once_ok"] == row["pairs_expected"] == 3 * 13
        assert 0 < row["share"]["orchestration_share"] < 1
        assert row["share"]["dcmtier_work_s"] > 0
    assert single["per_task"]["compress"]["success"] == 3 * 13
    assert units["per_task"]["compress"]["success"] == 13
    assert mix["projection"]["metadata_per_task_instance_bytes"] > 0
