"""kill -9 at three points of ``dcmtier process``, and of a DAG task, with PostgreSQL; the
DAG's next run (``reprocess`` none) then makes every study x tier exactly once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dcmtier.catalogue import Catalogue
from tests.faults.support import (
    TIERS,
    assert_each_pair_done_once,
    jobs,
    kill,
    process_args,
    run_dag,
    start,
    temps,
    wait_for,
)

# where the run is stopped, and where its half-written file then lies
POINTS = {
    "compress": "derived",  # a derived file written, not yet verified and renamed
    "package": "packages",  # a ZIP with its members, without its manifest
    "between-tiers": None,  # the first study x tier finished, the second not
}


@pytest.mark.parametrize("point", sorted(POINTS))
def test_after_kill_9_of_the_command_the_next_dag_run_makes_everything_once(
    *,
    airflow_db: Path, pg_url: str, landing: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, point: str,
) -> None:  # fmt: skip
    out, marker = tmp_path / "out", tmp_path / "paused"
    run = start(process_args(landing, out, pg_url), pause_at=point, marker=marker)
    wait_for(marker, run)
    kill(run)

    left = [p.relative_to(out).parts[0] for p in temps(out)]
    if POINTS[point] is None:
        assert left == []
        assert sorted(j["status"] for j in jobs(pg_url)) == ["ok", "running"]
    else:
        assert POINTS[point] in left, left
        assert {j["status"] for j in jobs(pg_url)} == {"running"}
    catalogue = Catalogue.connect(pg_url)
    pairs = {(j["study_uid"], j["tier"]) for j in jobs(pg_url) if j["status"] == "running"}
    assert set(catalogue.pair_status({s for s, _ in pairs}, TIERS).values()) <= {
        "abandoned", "ok",
    }  # fmt: skip
    catalogue.close()

    monkeypatch.setenv("DCMTIER_CATALOGUE_URL", pg_url)
    dag_run = run_dag(landing, out)

    assert str(dag_run.state).endswith("success")
    assert_each_pair_done_once(pg_url, out, landing)
    assert {j["status"] for j in jobs(pg_url)} <= {"ok", "abandoned"}


def test_after_kill_9_of_a_dag_task_the_next_dag_run_makes_everything_once(
    airflow_db: Path, pg_url: str, landing: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    out, marker = tmp_path / "out", tmp_path / "paused"
    monkeypatch.setenv("DCMTIER_CATALOGUE_URL", pg_url)
    script = (
        "import sys; from tests.faults.support import run_dag; from pathlib import Path; "
        "run_dag(Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    task = start([sys.executable, "-c", script, str(landing), str(out)], pause_at="package",
                 marker=marker, PYTHONPATH=os.pathsep.join(sys.path))  # fmt: skip
    wait_for(marker, task, timeout=600)  # Airflow's start-up on a loaded machine
    kill(task)
    assert [p.relative_to(out).parts[0] for p in temps(out)] == ["packages"]
    assert "running" in {j["status"] for j in jobs(pg_url)}

    dag_run = run_dag(landing, out)

    assert str(dag_run.state).endswith("success")
    assert_each_pair_done_once(pg_url, out, landing)
