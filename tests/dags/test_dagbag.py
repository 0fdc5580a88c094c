"""The DAG file parses cleanly and carries the policies operators rely on."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

DAG_ID = "dicom_archive_compression"
DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


def test_the_dagbag_holds_the_dag_without_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert DAG_ID in dagbag.dags


def test_every_task_retries_with_exponential_backoff_and_the_dag_is_tagged(
    dagbag: DagBag,
) -> None:
    dag = dagbag.dags[DAG_ID]
    assert {"dicom", "dcmtier"} <= set(dag.tags)
    assert dag.doc_md and "backfill" in dag.doc_md
    for task in dag.tasks:
        assert task.retry_exponential_backoff == 2.0
        assert task.max_retry_delay is not None
    compress = dag.get_task("compress")
    assert compress.pool == "dcmtier"
    assert {a.name for a in compress.outlets} == {"dcmtier_quality", "dcmtier_packages"}


def test_the_params_have_defaults_and_descriptions(dagbag: DagBag) -> None:
    params = dagbag.dags[DAG_ID].params
    expected = {"landing", "output", "tiers", "select_by", "reprocess", "settle_seconds",
                "max_studies_per_run"}  # fmt: skip
    assert expected <= set(params.keys())
    for name in expected:
        param = params.get_param(name)
        assert param.description, name
        assert param.value is not None, name


def test_the_schedule_is_time_based_for_backfills(dagbag: DagBag) -> None:
    timetable = dagbag.dags[DAG_ID].timetable
    assert type(timetable).__name__ == "CronDataIntervalTimetable"  # runs carry an interval
    assert timetable.can_be_scheduled


@pytest.mark.parametrize("dag_id", [DAG_ID, "dcmtier_packages_changed"])
def test_the_dag_file_only_wires(dagbag: DagBag, dag_id: str) -> None:
    """No heavy imports at module level, and each task body is a short call into dcmtier."""
    tree = ast.parse((DAGS / f"{dag_id}.py").read_text())
    top_imports = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not top_imports & {"numpy", "pydicom", "pyarrow", "sqlalchemy"}
    tasks = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name != dag_id]
    assert tasks and all(len(t.body) <= 3 for t in tasks)


def test_parsing_the_dags_loads_no_heavy_library() -> None:
    code = (
        "import sys, runpy\n"
        f"for name in ('{DAG_ID}', 'dcmtier_packages_changed'):\n"
        f"    runpy.run_path('{DAGS}/' + name + '.py')\n"
        "heavy = {'numpy', 'pydicom', 'pyarrow', 'openlineage'} & set(sys.modules)\n"
        "sys.exit(' '.join(sorted(heavy)) or None)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_candidates_and_viewers_defaults_come_from_the_environment() -> None:
    """A deployment sets what its viewers decode once; scheduled runs take the defaults."""
    code = (
        "import runpy\n"
        f"params = runpy.run_path('{DAGS}/{DAG_ID}.py')['PARAMS']\n"
        "print(repr((params['candidates'].value, params['viewers'].value)))"
    )
    env = {**os.environ, "DCMTIER_CANDIDATES": "htj2k, jls,j2k", "DCMTIER_VIEWERS": ""}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1] == "(['htj2k', 'jls', 'j2k'], [])"


def test_the_example_consumer_runs_on_the_packages_asset_the_compress_task_emits(
    dagbag: DagBag,
) -> None:
    compress = dagbag.dags[DAG_ID].get_task("compress")
    emitted = {(a.name, a.uri) for a in compress.outlets}
    consumer = dagbag.dags["dcmtier_packages_changed"]
    scheduled = {(a.name, a.uri) for a in consumer.timetable.asset_condition.objects}
    assert [name for name, _ in scheduled] == ["dcmtier_packages"] and scheduled <= emitted


def test_large_units_run_in_tasks_of_their_own_in_the_large_pool(dagbag: DagBag) -> None:
    """The same encode and compress, mapped over the large units, in $DCMTIER_LARGE_POOL
    (the tests' conftest names dcmtier_large); every unit's result reaches the summary."""
    dag = dagbag.dags[DAG_ID]
    for name, large in (("encode", "encode_large"), ("compress", "compress_large")):
        ordinary, task = dag.get_task(name), dag.get_task(large)
        assert (task.pool, task.pool_slots) == ("dcmtier_large", 1)
        assert ordinary.pool == "dcmtier"
        assert task.map_index_template == ordinary.map_index_template
        assert task.trigger_rule == ordinary.trigger_rule
        twin = {"units": "large_units", "encode": "encode_large"}
        assert task.upstream_task_ids == {twin.get(t, t) for t in ordinary.upstream_task_ids}
    compress_large = dag.get_task("compress_large")
    assert {a.name for a in compress_large.outlets} == {"dcmtier_quality", "dcmtier_packages"}
    assert {"compress", "compress_large"} <= dag.get_task("summary").upstream_task_ids
    assert {"compress", "compress_large"} <= dag.get_task("publish").upstream_task_ids
    assert dag.params.get_param("large_instance_mb").value == 0
