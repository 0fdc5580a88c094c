"""The integration tests' Airflow deployment: ``dcmtier.bench.airflow_stack`` (the scale
benchmark's DAG figures start the same one)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dcmtier.bench.airflow_stack import (
    PG,
    REPO,
    AirflowStack,
    create_database,
    drop_database,
    free_port,
    query,
    wait_for,
)
from tests.support import skip_or_fail

__all__ = [
    "DAG_ID",
    "PG",
    "REPO",
    "RUN_TIMEOUT",
    "AirflowStack",
    "create_database",
    "deployment_databases",
    "drop_database",
    "free_port",
    "query",
    "trigger_run",
    "wait_for",
    "wait_run",
]

DAG_ID = "dicom_archive_compression"
RUN_TIMEOUT = 420  # seconds a run may take on a loaded 2-core machine


def trigger_run(stack: AirflowStack, conf: dict[str, Any]) -> str:
    """A manual run of the DAG with ``conf``, through the REST API; its run id."""
    body = {"logical_date": None, "conf": conf}
    return str(stack.api("POST", f"/dags/{DAG_ID}/dagRuns", json=body)["dag_run_id"])


def wait_run(stack: AirflowStack, run_id: str, *, every: float = 3) -> str:
    """The run's final state (success or failed); the components' logs on a timeout."""

    def finished() -> str | None:
        state = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        return state if state in ("success", "failed") else None

    try:
        return str(wait_for(finished, timeout=RUN_TIMEOUT, what=f"run {run_id}", every=every))
    except TimeoutError as exc:
        logs = "\n".join(f"--- {n}\n{stack.log_tail(n, 30)}" for n in stack.processes)
        raise AssertionError(f"{exc}\n{logs}") from None


@contextmanager
def deployment_databases(prefix: str) -> Iterator[tuple[str, str]]:
    """A fresh metadata and catalogue database (``<prefix>_airflow_<hex>``,
    ``<prefix>_catalogue_<hex>``), dropped afterwards; without PostgreSQL the test fails in CI
    and is skipped elsewhere."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"{prefix}_airflow_{suffix}", f"{prefix}_catalogue_{suffix}")
    try:
        urls = (create_database(names[0]), create_database(names[1]))
    except Exception as exc:
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 unreachable: {exc}")
    try:
        yield urls
    finally:
        for name in names:
            drop_database(name)
