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
    # per study one encode and two compress (a run whose studies another run took first skips
    # its empty expansions)
    assert dag["per_task"]["compress"]["success"] == 6
    assert dag["per_task"]["encode"]["success"] == 3
    assert set(dag["ti_states"]) <= {"success", "skipped"}
    assert dag["wall_s"] > 0 and dag["busy_s"] > 0 and dag["overhead_per_ti_s"] > 0
    ran = sum(states.get("success", 0) for states in dag["per_task"].values())
    assert dag["task_instances_run"] == ran == dag["schedulable_to_start_s"]["n"]
    assert dag["metadata"]["after_bytes"] > dag["metadata"]["before_bytes"]
    assert dag["metadata"]["tables_grown_bytes"]["task_instance"] > 0
