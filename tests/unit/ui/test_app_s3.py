"""The compression pages with the outputs on object storage: the Parquet partition, the ZIP
and the files of the difference image are read from the store (``dcmtier.storage.access``),
here the tests' S3 API server on loopback reached through ``AWS_ENDPOINT_URL``."""

from __future__ import annotations

import re
import sqlite3
import zipfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dcmtier.catalogue.engine import ENV_URL
from dcmtier.cli import main
from dcmtier.sample import write_ct_series
from dcmtier.ui.frames import DATA_DIR_ENV
from tests.objstore import S3Process, environment, s3_server
from tests.unit.ui.conftest import PLANTED, token

OUT = "s3://pages/out"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Process]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def on_s3(s3: S3Process, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The UI tests' study (3 slices, one truncated) processed onto S3, catalogue in SQLite."""
    root = tmp_path_factory.mktemp("ui-s3")
    files = write_ct_series(root / "landing" / PLANTED, slices=3, rows=128, columns=128, seed=21)
    files[1].write_bytes(files[1].read_bytes()[:-2000])
    s3.client().create_bucket(Bucket="pages")
    url = f"sqlite:///{root / 'catalogue.db'}"
    with environment({**s3.env, "DCMTIER_SCRATCH": str(root / "scratch")}):
        assert main(["db", "upgrade", "--catalogue", url]) == 0
        argv = ["process", str(root / "landing"), "--out", OUT, "--catalogue", url,
                "--jobs", "1", "--tier", "j2k-lossless", "--tier", "j2k-r20"]  # fmt: skip
        assert main(argv) == 1  # partial: the truncated slice
    with sqlite3.connect(root / "catalogue.db") as conn:
        study = str(conn.execute("SELECT study_uid FROM studies").fetchone()[0])
    return {"db": root / "catalogue.db", "study": study}


@pytest.fixture
def client(
    airflow_db: Path, s3: S3Process, on_s3: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    from airflow.api_fastapi.app import init_auth_manager

    from dcmtier.ui import URL_PREFIX, create_app
    from dcmtier.ui import app as ui_app

    monkeypatch.setenv(ENV_URL, f"sqlite:///{on_s3['db']}")
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)  # found from the package's URL
    ui_app._FIGURES.clear()
    root = FastAPI()
    root.mount(URL_PREFIX, create_app())
    init_auth_manager(root)
    with environment(s3.env), TestClient(root) as test_client:
        yield test_client


def _get(client: TestClient, path: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {token()}"})


def test_the_catalogue_names_the_outputs_by_their_urls_on_the_store(on_s3: dict[str, Any]) -> None:
    with sqlite3.connect(on_s3["db"]) as conn:
        uris = [r[0] for r in conn.execute("SELECT output_uri FROM derived_instances")]
    assert len(uris) == 4 and all(u.startswith(f"{OUT}/derived/") for u in uris)


def test_the_study_page_reads_the_parquet_and_draws_the_difference_from_the_store(
    client: TestClient, on_s3: dict[str, Any]
) -> None:
    response = _get(client, f"/dcmtier/studies/{on_s3['study']}/j2k-r20")
    assert response.status_code == 200, response.text
    html = response.text
    assert "partial 2/3 · 1 failed" in html
    assert "read from the Parquet" in html
    png = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert png is not None and len(png.group(1)) > 200
    assert "cannot be drawn" not in html
    assert PLANTED not in html


def test_the_zip_on_the_store_downloads_as_written(
    client: TestClient, s3: S3Process, on_s3: dict[str, Any]
) -> None:
    study = on_s3["study"]
    response = _get(client, f"/dcmtier/studies/{study}/j2k-r20/package.zip")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert f"{study}-j2k-r20.zip" in response.headers["content-disposition"]
    stored = s3.client().get_object(Bucket="pages", Key=f"out/packages/{study}/j2k-r20.zip")
    assert response.content == stored["Body"].read()
    assert len(zipfile.ZipFile(BytesIO(response.content)).namelist()) == 3  # 2 + manifest


def test_with_the_store_unreachable_the_pages_fall_back_and_the_zip_is_a_404(
    client: TestClient, s3: S3Process, on_s3: dict[str, Any]
) -> None:
    from dcmtier.ui import app as ui_app

    ui_app._rendered.cache_clear()
    s3.stop()
    try:
        study = on_s3["study"]
        html = _get(client, f"/dcmtier/studies/{study}/j2k-r20").text
        assert "read from the catalogue" in html
        assert "cannot be drawn" in html
        assert _get(client, f"/dcmtier/studies/{study}/j2k-r20/package.zip").status_code == 404
    finally:
        s3.resume()
