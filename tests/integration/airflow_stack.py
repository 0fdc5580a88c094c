"""The integration tests' Airflow deployment: ``dcmtier.bench.airflow_stack`` (the scale
benchmark's DAG figures start the same one)."""

from __future__ import annotations

from dcmtier.bench.airflow_stack import (
    PG,
    REPO,
    AirflowStack,
    create_database,
    drop_database,
    free_port,
    wait_for,
)

__all__ = [
    "PG",
    "REPO",
    "AirflowStack",
    "create_database",
    "drop_database",
    "free_port",
    "wait_for",
]
