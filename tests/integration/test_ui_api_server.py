"""The compression pages on a real api-server that loads the repository's ``plugins/``.

Only the api-server runs (no scheduler or workers): the pages read a catalogue in PostgreSQL
that ``dcmtier process`` filled, and users sign in through SimpleAuthManager's token endpoint:
``viewer`` (role viewer) and ``operator`` (role user, who may trigger the DAG). The DAG is
serialized as a dag-processor would (``airflow dags reserialize``), so that the study page's
Reprocess form makes a real, queued run nobody schedules.
"""

from __future__ import annotations

import html
import json
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from dcmtier.catalogue import Catalogue
from dcmtier.cli import main
from dcmtier.sample import write_ct_series
from dcmtier.ui.retry import DAG_ID
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
        passwords.write_text(json.dumps({"viewer": PASSWORD, "operator": PASSWORD}))
        stack = AirflowStack.configure(
            root / "airflow",
            metadata_url,
            redis_db=int(os.environ.get("DCMTIER_TEST_REDIS_DB", "11")),
            extra={
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "viewer:viewer,operator:user",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW_CONN_DCMTIER_CATALOGUE": catalogue_url,
                "DCMTIER_DATA_DIR": str(root / "data"),
            },
        )
        try:
            stack.start(api_server_only=True)
            stack.cli("dags", "reserialize")
            study = str(
                Catalogue.connect(catalogue_url)
                .engine.connect()
                .exec_driver_sql("SELECT study_uid FROM studies")
                .scalar_one()
            )
            yield {"stack": stack, "study": study}
        finally:
            stack.stop()


def _token(stack: AirflowStack, user: str = "viewer") -> str:
    response = httpx.post(
        f"{stack.url}/auth/token", json={"username": user, "password": PASSWORD}, timeout=30
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


def _form(page: str, label: str) -> tuple[str, dict[str, list[str]]]:
    """The Reprocess form whose button reads ``label``: where it posts, and its fields."""
    for action, body in re.findall(r'<form class="reprocess" method="post" action="([^"]+)">'
                                   r"(.*?)</form>", page, re.S):  # fmt: skip
        if f">{label}</button>" in body:
            fields: dict[str, list[str]] = {}
            for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', body):
                fields.setdefault(name, []).append(html.unescape(value))
            return html.unescape(action), fields
    raise AssertionError(f"no {label!r} form")


def test_the_reprocess_button_makes_one_queued_run_and_a_viewer_gets_none_and_a_403(
    server: dict[str, Any],
) -> None:
    stack, study = server["stack"], server["study"]
    page_path = f"/dcmtier/studies/{study}/j2k-r20"
    viewer = {"Authorization": f"Bearer {_token(stack)}"}
    operator = {"Authorization": f"Bearer {_token(stack, 'operator')}"}
    viewer_page = httpx.get(f"{stack.url}{page_path}", headers=viewer, timeout=60).text
    assert "<h2>Reprocess</h2>" not in viewer_page and "<form" not in viewer_page
    page = httpx.get(f"{stack.url}{page_path}", headers=operator, timeout=60).text
    action, fields = _form(page, "Reprocess")  # the first tier row: j2k-lossless
    assert fields["tiers"] == ["j2k-lossless"] and fields["reprocess"] == ["all"]
    assert (
        httpx.post(f"{stack.url}{action}", data=fields, headers=viewer, timeout=60).status_code
        == 403
    )
    assert stack.api("GET", f"/dags/{DAG_ID}/dagRuns", headers=operator)["total_entries"] == 0
    # the UI's way: the session cookie, a same-origin POST from the page
    response = httpx.post(
        f"{stack.url}{action}", data=fields, timeout=120,
        cookies={"_token": operator["Authorization"].split()[1]},
        headers={"Origin": stack.url, "Sec-Fetch-Site": "same-origin"},
    )  # fmt: skip
    assert response.status_code == 303, response.text  # to the run's page: a reload is a GET
    location = response.headers["location"]
    runs = stack.api("GET", f"/dags/{DAG_ID}/dagRuns", headers=operator)["dag_runs"]
    assert len(runs) == 1
    (run,) = runs
    assert run["conf"] == {"study_uids": [study], "tiers": ["j2k-lossless"], "reprocess": "all"}
    assert run["run_type"] == "manual" and run["state"] == "queued"
    assert run["triggering_user_name"] == "operator"
    assert location == f"/dcmtier/runs/{quote(run['dag_run_id'], safe='')}"
    shown = httpx.get(f"{stack.url}{location}", headers=operator, timeout=60)
    assert shown.status_code == 200 and "triggered by operator" in shown.text
    assert f'href="/dags/{DAG_ID}/runs/{quote(run["dag_run_id"], safe="")}"' in shown.text
    events = stack.api("GET", f"/eventLogs?dag_id={DAG_ID}&event=trigger_dag_run", headers=operator)
    assert [(e["owner"], e["run_id"]) for e in events["event_logs"]] == [
        ("operator", run["dag_run_id"])
    ]
    # the same form from another site: refused, no second run
    refused = httpx.post(
        f"{stack.url}{action}", data=fields, timeout=60,
        cookies={"_token": operator["Authorization"].split()[1]},
        headers={"Origin": "https://elsewhere.example"},
    )  # fmt: skip
    assert refused.status_code == 403
    assert stack.api("GET", f"/dags/{DAG_ID}/dagRuns", headers=operator)["total_entries"] == 1
