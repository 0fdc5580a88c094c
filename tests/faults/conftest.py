"""Real faults against real processes: ``dcmtier process`` and DAG tasks in subprocesses,
killed with SIGKILL at named points, a PostgreSQL server stopped under them, a full disk.

The points are `dcmtier.owner.checkpoint` calls; ``DCMTIER_TEST_PAUSE_AT=<point>:<marker>``
makes the process that reaches one write the marker and wait there (the tests only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dcmtier.catalogue import Catalogue
from dcmtier.sample import write_ct_series
from tests.dags.conftest import airflow_db  # noqa: F401 - the DAG runs' Airflow home
from tests.faults.support import SLICES
from tests.integration.conftest import fresh_database, postgres_server  # noqa: F401


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    for seed, (name, slices) in enumerate(SLICES.items(), start=1):
        write_ct_series(root / name, slices=slices, rows=64, columns=64, seed=seed)
    return root


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:  # noqa: F811 - the fixture above
    """A fresh catalogue database at head, on the shared server, dropped afterwards."""
    with fresh_database(postgres_server) as url:
        Catalogue.upgrade(url)
        yield url
