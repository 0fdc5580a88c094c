"""The integration tests' Airflow deployment: ``dcmtier.bench.airflow_stack`` (the scale
benchmark's DAG figures start the same one)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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
    "PG",
    "REPO",
    "AirflowStack",
    "create_database",
    "deployment_databases",
    "drop_database",
    "free_port",
    "query",
    "wait_for",
]


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
