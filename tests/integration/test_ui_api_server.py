"""The compression pages on a real api-server that loads the repository's ``plugins/``.

Only the api-server runs (no scheduler or workers): the pages read a catalogue in PostgreSQL
that ``dcmtier process`` filled, and users sign in through SimpleAuthManager's token endpoint.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dcmtier.catalogue import Catalogue
from dcmtier.cli import main
from dcmtier.sample import write_ct_series
from tests.integration.airflow_stack import AirflowStack, deployment_databases

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
PASSWORD = uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ui-server")
    with deployment_databases("dcmtier_ui") as (metadata_url, catalogue_url):
        Catalogue.upgrade(catalogue_url)
        files = write_ct_series(
            root / "landing" / "study", slices=3, rows=128, columns=128, seed=31
        )
        files[2].write_bytes(files[2].read_bytes()[:-2000])
        argv = [
            "process",
            str(root / "landing"),
            "--out",
            str(root / "data"),
            "--jobs",
            "1",
            "--catalogue",
            catalogue_url,
            "--tier",
            "j2k-lossless",
            "--tier",
            "j2k-r20",
        ]
        assert main(argv) == 1  # partial: the truncated slice
        passwords = root / "passwords.json"
        passwords.write_text(json.dumps({"viewer": PASSWORD}))
        stack = AirflowStack.configure(
            root / "airflow",
            metadata_url,
            redis_db=int(os.environ.get("DCMTIER_TEST_REDIS_DB", "11")),
            extra={
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "viewer:viewer",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW_CONN_DCMTIER_CATALOGUE": catalogue_url,
                "DCMTIER_DATA_DIR": str(root / "data"),
            },
        )
        try:
            stack.start(api_server_only=True)
            study = str(
                Catalogue.connect(catalogue_url)
                .engine.connect()
                .exec_driver_sql("SELECT study_uid FROM studies")
                .scalar_one()
            )
            yield {"stack": stack, "study": study}
        finally:
            stack.stop()


def _token(stack: AirflowStack) -> str:
    response = httpx.post(
        f"{stack.url}/auth/token", json={"username": "viewer", "password": PASSWORD}, timeout=30
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["access_token"])


def test_the_api_lists_the_plugin_with_a_nav_view_and_a_task_instance_view(
    server: dict[str, Any],
) -> None:
    stack = server["stack"]
    headers = {"Authorization": f"Bearer {_token(stack)}"}
    plugins = httpx.get(f"{stack.url}/api/v2/plugins", headers=headers, timeout=30).json()
    (plugin,) = [p for p in plugins["plugins"] if p["name"] == "dcmtier"]
    views = {v["destination"]: v for v in plugin["external_views"]}
    assert views["nav"]["name"] == "Compression" and views["nav"]["href"] == "/dcmtier/"
    assert views["task_instance"]["href"].startswith("/dcmtier/ti/{DAG_ID}/{RUN_ID}/{TASK_ID}")
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/dcmtier"]
    assert "import_errors" not in plugins or not plugins.get("import_errors")


def test_without_a_token_the_pages_answer_401(server: dict[str, Any]) -> None:
    stack = server["stack"]
    for path in ("/dcmtier/", f"/dcmtier/studies/{server['study']}/j2k-r20"):
        assert httpx.get(f"{stack.url}{path}", timeout=30).status_code in (401, 403)


def test_signed_in_the_overview_charts_j2k_r20_and_the_study_page_shows_psnr(
    server: dict[str, Any],
) -> None:
    stack = server["stack"]
    headers = {"Authorization": f"Bearer {_token(stack)}"}
    overview = httpx.get(f"{stack.url}/dcmtier/", headers=headers, timeout=60)
    assert overview.status_code == 200
    charts = re.findall(r"<svg.*?</svg>", overview.text, re.S)
    assert any("j2k-r20" in chart for chart in charts)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", overview.text)
    assert "http://" not in overview.text and "https://" not in overview.text
    assert "postgresql" in overview.text  # the connection's catalogue, not a SQLite default
    page = httpx.get(
        f"{stack.url}/dcmtier/studies/{server['study']}/j2k-r20", headers=headers, timeout=60
    )
    assert page.status_code == 200
    assert "PSNR against own range (dB)" in page.text and "partial 2/3 · 1 failed" in page.text
    assert "data:image/png;base64," in page.text  # the worst frame's difference, from files
