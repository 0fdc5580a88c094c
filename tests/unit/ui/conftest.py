"""A processed study in the embedded catalogue, and the app mounted as Airflow's api-server
mounts it, behind Airflow's own auth manager (SimpleAuthManager) and its JWTs.

The Airflow home is the DAG tests' (``tests/dags/conftest.py``): one per test process, set
before Airflow is imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dcmtier.catalogue.engine import ENV_URL
from dcmtier.cli import main
from dcmtier.sample import write_ct_series
from dcmtier.ui.frames import DATA_DIR_ENV
from tests.dags.conftest import airflow_db  # the same home and metadata DB

__all__ = ["airflow_db"]
PLANTED = "DOE_JANE_19700101"  # a patient name in a landing folder: must never show


@pytest.fixture(scope="session")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-slice CT study (one slice truncated) processed into j2k-lossless and j2k-r20."""
    root = tmp_path_factory.mktemp("ui")
    landing = root / "landing" / PLANTED
    files = write_ct_series(landing, slices=3, rows=128, columns=128, seed=21)
    files[1].write_bytes(files[1].read_bytes()[:-2000])  # header readable, pixels cut short
    out = root / "out"
    argv = ["process", str(root / "landing"), "--out", str(out), "--jobs", "1",
            "--tier", "j2k-lossless", "--tier", "j2k-r20"]  # fmt: skip
    assert main(argv) == 1  # partial: the truncated slice
    return out


@pytest.fixture
def client(
    airflow_db: Path, processed: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    with app_client(processed / "catalogue.db", monkeypatch) as test_client:
        yield test_client


@contextmanager
def app_client(catalogue: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app on the SQLite ``catalogue``, mounted as the api-server mounts it."""
    from airflow.api_fastapi.app import init_auth_manager

    from dcmtier.ui import URL_PREFIX, create_app
    from dcmtier.ui import app as ui_app

    monkeypatch.setenv(ENV_URL, f"sqlite:///{catalogue}")
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)  # found from the package's location
    ui_app._FIGURES.clear()
    root = FastAPI()
    root.mount(URL_PREFIX, create_app())
    init_auth_manager(root)
    with TestClient(root) as test_client:
        yield test_client


def token(role: str = "viewer") -> str:
    """A JWT as Airflow's auth manager signs it for a signed-in user of ``role``."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return str(get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=role, role=role)))
