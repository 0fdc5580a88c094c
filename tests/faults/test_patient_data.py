"""A patient's name planted in folder names, file names and DICOM headers appears nowhere but in
DICOM headers and the operators' tables (``file_locations``, the landing index
``landing_files``), after ``dcmtier process`` and ``dcmtier discover`` (their stdout and
stderr, plain and ``--json``) and after a DAG run (its task logs and XCom): not in any file
under the output root (names and contents: work/ manifests and plan, quarantine copies' names
and reason files, Parquet, ZIP manifests and members), not in any other catalogue table or
view (``claims`` and ``backlog`` included). A real Airflow deployment's task logs are searched in
``tests/integration/test_airflow_pipeline.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from tests.dags.conftest import airflow_db  # noqa: F401 (Airflow's home, set before it loads)
from tests.faults.planted import (
    OPERATOR_TABLE,
    PLANTED,
    leaks_in_text,
    leaks_under,
    operator_table_holds_it,
    plant_landing,
    sqlite_leaks,
)

TIERS = ["j2k-lossless", "j2k-r10", "j2k-r50"]  # two rate tiers: the DAG's layered encode runs
DCMTIER = str(Path(sys.executable).with_name("dcmtier"))
DAGS = Path(__file__).resolve().parents[2] / "dags"

# Runs the DAG in a process of its own, so that everything Airflow and the tasks log is on its
# stdout and stderr (in pytest's process, earlier tests' log handlers would hold streams).
DAG_TEST = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags["dicom_archive_compression"]
run = dag.test(run_conf=json.loads(sys.argv[2]))
print("dag run", run.run_id, run.state)
"""


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("planted") / "landing"
    return {"root": root, **plant_landing(root)}


def _dcmtier(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DCMTIER, *args], capture_output=True, text=True, timeout=600, check=False
    )


def _table(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def _key(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


def _assert_the_run_did_its_work(out: Path, landing: dict[str, Path]) -> None:
    """What must be there, named by key: the search below is not over an empty output."""
    broken_uid = str(dcmread(landing["broken"], stop_before_pixels=True).SOPInstanceUID)
    study_uid = str(dcmread(landing["good"], stop_before_pixels=True).StudyInstanceUID)
    packages = {p.name for p in (out / "packages" / study_uid).glob("*.zip")}
    assert packages >= {"j2k-lossless.zip", "j2k-r10.zip"}
    quarantine = out / "quarantine"
    assert (quarantine / study_uid / f"{broken_uid}.dcm").is_file()
    strays = {p.name for p in (quarantine / "_unidentified").glob("*.dcm")}
    assert strays == {f"{_key(landing['orphan'])}.dcm"}  # the text file is skipped: no fault
    failures = _table(out / "catalogue.db", "SELECT file, reason FROM failures")
    assert {f for f, _ in failures} >= {broken_uid, _key(landing["orphan"])}
    assert all(reason.startswith(f"{file}: ") for file, reason in failures)
    located = _table(out / "catalogue.db", f"SELECT file_key, uri FROM {OPERATOR_TABLE}")
    assert operator_table_holds_it(located)  # the one place that may hold the location
    assert len(located) == 6  # every file found: 4 slices, the stray DICOM and the text file


def test_dcmtier_process_shows_and_writes_the_name_only_in_dicom_headers(
    landing: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    printed = []
    for form in ([], ["--json"]):
        proc = _dcmtier("process", str(landing["root"]), "--out", str(out), "--jobs", "1",
                        *[a for t in TIERS for a in ("--tier", t)], *form)  # fmt: skip
        assert proc.returncode == 1, proc.stderr  # a failed instance and a stray DICOM file
        assert "Traceback" not in proc.stderr
        printed += [proc.stdout, proc.stderr]
    assert any(line.startswith('{"') for line in printed[2].splitlines())
    for form in ([], ["--json"]):  # the landing index alone, into the same catalogue
        proc = _dcmtier("discover", str(landing["root"]), "--out", str(out), *form)
        assert proc.returncode == 0, proc.stderr
        printed += [proc.stdout, proc.stderr]
    assert json.loads(printed[-2])["files_listed"] == 6
    assert leaks_in_text("dcmtier process output", "".join(printed)) == []
    _assert_the_run_did_its_work(out, landing)
    assert leaks_under(out) == []
    assert sqlite_leaks(out / "catalogue.db") == []
    # an operator who needs a file asks for it: --show-paths, or dcmtier locate KEY
    shown = _dcmtier("process", str(landing["root"]), "--out", str(out), "--jobs", "1",
                     "--tier", TIERS[0], "--json", "--show-paths")  # fmt: skip
    assert leaks_in_text("--show-paths", shown.stdout)
    key = _key(landing["orphan"])
    located = _dcmtier("locate", key, "--out", str(out))
    assert located.returncode == 0
    assert located.stdout.split("\t")[:2] == [key, landing["orphan"].as_uri()]


def test_a_dag_run_logs_and_passes_the_name_only_in_dicom_headers(
    airflow_db: Path,  # noqa: F811
    landing: dict[str, Path],
    tmp_path: Path,
) -> None:
    out = tmp_path / "dag-out"
    conf = {"landing": str(landing["root"]), "output": str(out), "tiers": TIERS,
            "settle_seconds": 0}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", DAG_TEST, str(DAGS), json.dumps(conf)],
        capture_output=True, text=True, timeout=600, check=False, env=os.environ,
    )  # fmt: skip
    logged = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "success" in proc.stdout.splitlines()[-1], logged[-4000:]
    assert "Returned value was" in logged and "discovery:" in logged  # the tasks' logs are here
    assert leaks_in_text("dag.test log", logged) == []
    run_id = proc.stdout.splitlines()[-1].split()[2]
    xcoms = _table(
        airflow_db / "airflow.db",
        f"SELECT task_id, map_index, value FROM xcom WHERE run_id = '{run_id}'",
    )
    assert {t for t, _, _ in xcoms} >= {"discover", "compress", "summary"}
    assert leaks_in_text("XCom", json.dumps(xcoms, default=str)) == []
    # dag.test() writes the tasks' logs into its output, searched above (the two markers show
    # they are there), and no log files (seen with Airflow 3.3.2: none under logs/); files
    # that another Airflow version writes are searched as well
    for path in sorted(p for p in (airflow_db / "logs").rglob("*") if p.is_file()):
        assert leaks_in_text(str(path), path.read_bytes()) == []
    _assert_the_run_did_its_work(out, landing)
    indexed = _table(out / "catalogue.db", "SELECT uri FROM landing_files")
    assert operator_table_holds_it(indexed) and len(indexed) == 6  # the index is not blind
    manifests = list((out / "work").rglob("*.json"))
    assert manifests and leaks_under(out) == []
    assert sqlite_leaks(out / "catalogue.db") == []
    assert PLANTED not in json.dumps([json.loads(m.read_text()) for m in manifests])
