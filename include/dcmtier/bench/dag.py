"""Airflow's share of a DAG run's wall time, measured with ``dag.test()`` in a child process.

``python -m dcmtier.bench.dag LANDING OUTPUT --tier T ...`` runs ``dicom_archive_compression``
once over the studies under LANDING (a manual run: every settled study) and prints one JSON
line: the run's wall time, its CPU time (this process and its waited-for children: on a
shared machine the steadier figure) and the summed durations of its task instances. The
difference is time Airflow spent around the tasks (parsing, scheduling the mapped instances,
XCom, state writes), and ``overhead_share`` is that difference over the wall time.
``dag.test()`` runs the tasks one after another in one process, so a deployed scheduler's
latency and an executor's process start per task are not in this figure: it is a lower bound.

The parent gives the child its own ``AIRFLOW_HOME`` (SQLite metadata, migrated once).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dcmtier.bench.timing import child_report, cpu_seconds
from dcmtier.errors import ConfigError

DAG_ID = "dicom_archive_compression"
POOL = "dcmtier"


def airflow_env(home: Path, dags: Path) -> dict[str, str]:
    """The environment of an isolated Airflow: its own home and metadata, no examples."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags.absolute()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "DCMTIER_TASK_RETRIES": "0",
        "DCMTIER_JOBS": "1",
    }


def prepare_airflow(env: dict[str, str]) -> None:
    """Migrate the metadata database and create the pool the DAG's tasks use."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    for command in (["db", "migrate"], ["pools", "set", POOL, "4", "dcmtier compression"]):
        done = subprocess.run(
            [airflow, *command], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ConfigError(f"airflow {' '.join(command)} failed: {done.stderr.strip()[-500:]}")


def measure_dag(
    landing: Path, output: Path, *, tiers: Sequence[str], env: dict[str, str]
) -> dict[str, Any]:
    """Run the child once and return its report."""
    args = [str(landing), str(output)]
    for tier in tiers:
        args += ["--tier", tier]
    return child_report("dcmtier.bench.dag", args, failure="the DAG run failed", env=env)


def dag_runs(
    folder: Path,
    dag_file: Path,
    *,
    slices: int,
    size: int,
    runs: int,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Per run: a DAG run over a generated study, then the same work called directly."""
    from dcmtier.bench.ours import run_unit
    from dcmtier.sample import write_ct_series
    from dcmtier.tiers import DEFAULT_TIERS, resolve_tiers

    if not dag_file.exists():
        return {"measured": False, "reason": f"not measured: DAG not available ({dag_file})"}
    landing = folder / "landing"
    write_ct_series(landing, slices=slices, rows=size, columns=size)
    env = airflow_env(folder / "airflow-home", dag_file.parent)
    try:
        prepare_airflow(env)
    except (ConfigError, OSError) as exc:
        return {"measured": False, "reason": f"not measured: Airflow unusable here: {exc}"}
    reports: list[dict[str, Any]] = []
    for run in range(runs):
        echo(f"DAG run {run + 1} of {runs}: {slices} slices, default tiers")
        shutil.rmtree(folder / "out", ignore_errors=True)
        report = measure_dag(landing, folder / "out", tiers=DEFAULT_TIERS, env=env)
        shutil.rmtree(folder / "out", ignore_errors=True)
        direct = run_unit(landing, resolve_tiers(None), folder / "out", jobs=1, run_id="dag")
        reports.append(
            {
                **report,
                "direct_wall_s": round(direct.timing.wall_s, 3),
                "direct_cpu_s": round(direct.timing.cpu_s, 3),
            }
        )
    return {"measured": True, "slices": slices, "size": size, "runs": reports}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dcmtier.bench.dag", description=__doc__)
    parser.add_argument("landing", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--tier", action="append", dest="tiers", required=True)
    args = parser.parse_args(argv)

    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[DAG_ID]
    conf = {"landing": str(args.landing), "output": str(args.output), "tiers": args.tiers,
            "settle_seconds": 0, "reprocess": "all"}  # fmt: skip
    started, cpu = time.perf_counter(), cpu_seconds()
    run = dag.test(run_conf=conf)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    instances = run.get_task_instances()
    tasks = sum(float(ti.duration or 0.0) for ti in instances)
    states = sorted({str(ti.state) for ti in instances})
    report = {
        "state": str(run.state),
        "task_instances": len(instances),
        "task_states": states,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "tasks_s": round(tasks, 3),
        "overhead_s": round(wall - tasks, 3),
        "overhead_share": round((wall - tasks) / wall, 4) if wall > 0 else None,
    }
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
