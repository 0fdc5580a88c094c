"""The study page's Reprocess forms: shown to users who may trigger the DAG, posting one run.

The DAG is serialized into the DAG tests' metadata database (``airflow dags reserialize``,
as a dag-processor would), the forms post through FastAPI's TestClient with Airflow's JWTs of
SimpleAuthManager's roles, and the runs are read back from Airflow's own tables.
"""

from __future__ import annotations

import html
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from dcmtier.ui.retry import DAG_ID
from tests.unit.ui.conftest import token

pytestmark = pytest.mark.slow  # airflow dags reserialize and an app start: ~30 s a test

FORM = re.compile(r'<form class="reprocess" method="post" action="([^"]+)">(.*?)</form>', re.S)


@pytest.fixture(scope="module")
def serialized(airflow_db: Path) -> Path:
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run(
        [airflow, "dags", "reserialize"], check=True, capture_output=True, env=os.environ
    )
    return airflow_db


def _study(processed: Path) -> str:
    with sqlite3.connect(processed / "catalogue.db") as conn:
        return str(conn.execute("SELECT study_uid FROM studies").fetchone()[0])


def _runs() -> list[tuple[str, dict[str, Any], str, str]]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID)).all()
        return [(r.run_id, dict(r.conf or {}), str(r.run_type), str(r.state)) for r in found]


def _forms(page: str) -> list[tuple[str, dict[str, list[str]]]]:
    """Each Reprocess form: where it posts and its fields, as a browser would send them."""
    forms = []
    for action, body in FORM.findall(page):
        fields: dict[str, list[str]] = {}
        for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', body):
            fields.setdefault(name, []).append(html.unescape(value))
        forms.append((html.unescape(action), fields))
    return forms


def _page(client: TestClient, study: str, role: str) -> str:
    response = client.get(
        f"/dcmtier/studies/{study}/j2k-r20", headers={"Authorization": f"Bearer {token(role)}"}
    )
    assert response.status_code == 200, response.text
    return response.text


def test_a_viewer_sees_no_button_and_a_post_from_a_viewer_is_refused_403(
    client: TestClient, processed: Path, serialized: Path
) -> None:
    study = _study(processed)
    page = _page(client, study, "viewer")
    assert "<h2>Reprocess</h2>" not in page and "<form" not in page
    action, fields = _forms(_page(client, study, "user"))[0]  # a user's form, posted by a viewer
    before = _runs()
    response = client.post(
        action, data=fields, headers={"Authorization": f"Bearer {token('viewer')}"}
    )
    assert response.status_code == 403
    assert client.post(action, data=fields).status_code == 401  # not signed in
    assert _runs() == before


def test_the_tier_button_triggers_exactly_one_run_with_the_conf_an_operator_would_type(
    client: TestClient, processed: Path, serialized: Path
) -> None:
    study = _study(processed)
    page = _page(client, study, "user")
    forms = _forms(page)
    # j2k-lossless and j2k-r20 one each, all tiers, failed only (j2k-r20 is partial)
    assert len(forms) == 4 and "Reprocess failed tiers only (j2k-lossless, j2k-r20)" in page
    action, fields = forms[1]
    assert action == f"/dcmtier/reprocess/{study}"
    assert fields["tiers"] == ["j2k-r20"] and fields["reprocess"] == ["all"]
    before = {run[0] for run in _runs()}
    auth = {"Authorization": f"Bearer {token('user')}"}
    response = client.post(action, data=fields, headers=auth)
    assert response.status_code == 200, response.text
    new = [run for run in _runs() if run[0] not in before]
    assert len(new) == 1
    run_id, conf, run_type, state = new[0]
    assert conf == {"study_uids": [study], "tiers": ["j2k-r20"], "reprocess": "all"}
    assert run_type.endswith("manual") and state.endswith("queued")
    # answered with a redirect to the run's page, which reads the run back from Airflow
    (redirect,) = response.history
    assert redirect.status_code == 303
    assert response.url.path == f"/dcmtier/runs/{run_id}"
    link = f'href="/dags/{DAG_ID}/runs/{quote(run_id, safe="")}"'
    assert link in response.text and html.escape(run_id) in response.text
    assert "triggered by user" in response.text and ">queued</span>" in response.text
    assert "The DAG is paused" in response.text  # paused at creation in this home
    assert f'href="/dcmtier/studies/{study}/j2k-r20"' in response.text
    # reloading it, as a viewer too, triggers nothing; a run that is not there is a 404
    viewer = {"Authorization": f"Bearer {token('viewer')}"}
    assert client.get(response.url, headers=viewer).status_code == 200
    assert len(_runs()) == len(before) + 1
    assert client.get("/dcmtier/runs/manual__none", headers=auth).status_code == 404


def test_all_tiers_and_failed_only_post_their_modes(
    client: TestClient, processed: Path, serialized: Path
) -> None:
    study = _study(processed)
    forms = _forms(_page(client, study, "op"))
    confs = []
    for action, fields in forms[2:]:
        before = {run[0] for run in _runs()}
        response = client.post(
            action, data=fields, headers={"Authorization": f"Bearer {token('op')}"}
        )
        assert response.status_code == 200, response.text
        (new,) = [run for run in _runs() if run[0] not in before]
        confs.append(new[1])
    tiers = ["j2k-lossless", "j2k-r20"]
    assert confs == [
        {"study_uids": [study], "tiers": tiers, "reprocess": "all"},
        {"study_uids": [study], "tiers": tiers, "reprocess": "failed"},
    ]


def test_a_forged_stale_or_cross_site_form_or_a_bad_conf_triggers_nothing(
    client: TestClient, processed: Path, serialized: Path
) -> None:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from dcmtier.ui.retry import form_token

    study = _study(processed)
    action, fields = _forms(_page(client, study, "user"))[1]
    auth = {"Authorization": f"Bearer {token('user')}"}
    other_user = form_token(SimpleAuthManagerUser(username="op", role="op"), study)
    other_study = form_token(SimpleAuthManagerUser(username="user", role="user"), "1.2.3")

    def post(
        replace: dict[str, str] | None = None, path: str = action, **headers: str
    ) -> tuple[int, str]:
        sent = {**fields, **{k: [v] for k, v in (replace or {}).items()}}
        response = client.post(path, data=sent, headers={**auth, **headers})
        return response.status_code, response.text

    before = _runs()
    assert post({"token": "x"})[0] == 403
    assert post({"token": other_user})[0] == 403  # another user's page
    assert post({"token": other_study})[0] == 403  # another study's page
    assert post(origin="https://elsewhere.example")[0] == 403
    assert post(**{"sec-fetch-site": "cross-site"})[0] == 403
    status, text = post({"tiers": "j2k-r999"})
    assert status == 400 and "unknown tier(s): j2k-r999" in text
    assert post({"reprocess": "none"})[0] == 400
    assert post({"token": other_study}, path="/dcmtier/reprocess/1.2.3")[0] == 404
    assert _runs() == before
    # the same form from this server's own origin, with the UI's session cookie
    client.cookies.set("_token", token("user"))
    try:
        response = client.post(action, data=fields, headers={"origin": "http://testserver"})
    finally:
        client.cookies.clear()
    assert response.status_code == 200 and len(_runs()) == len(before) + 1
