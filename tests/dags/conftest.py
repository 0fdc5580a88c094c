"""An isolated Airflow home (SQLite metadata) for the DAG tests, set before Airflow is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_HOME = Path(tempfile.mkdtemp(prefix="dcmtier-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "DCMTIER_TASK_RETRIES": "0",
        "DCMTIER_LARGE_POOL": "dcmtier_large",  # read when the DAG is parsed
    }
)


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """Migrate the SQLite metadata database once and create the pools the DAG uses."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, env=os.environ)
    for pool, slots in (("dcmtier", "4"), ("dcmtier_large", "1")):
        subprocess.run(
            [airflow, "pools", "set", pool, slots, f"{pool} (dcmtier tests)"],
            check=True,
            capture_output=True,
            env=os.environ,
        )
    yield _HOME
