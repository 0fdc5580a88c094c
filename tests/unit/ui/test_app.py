"""The pages through FastAPI's TestClient, signed in with an Airflow JWT or not at all."""

from __future__ import annotations

import re
import shutil
import sqlite3
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dcmtier.cli import main
from dcmtier.sample import write_ct_series
from tests.unit.ui.conftest import PLANTED, app_client, token

PAGES = [
    "/dcmtier/",
    "/dcmtier/studies/1.2.3/j2k-r20",
    "/dcmtier/studies/1.2.3/j2k-r20/package.zip",
    "/dcmtier/ti/dicom_archive_compression/run/compress/0",
]


def _study(processed: Path) -> str:
    with sqlite3.connect(processed / "catalogue.db") as conn:
        return str(conn.execute("SELECT study_uid FROM studies").fetchone()[0])


def _get(client: TestClient, path: str) -> str:
    response = client.get(path, headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.parametrize("path", PAGES)
def test_without_a_token_every_page_answers_401_and_with_a_forged_one_403(
    client: TestClient, path: str
) -> None:
    assert client.get(path).status_code == 401
    forged = token()[:-4] + "abcd"
    assert client.get(path, headers={"Authorization": f"Bearer {forged}"}).status_code == 403


def test_the_pages_answer_get_only(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {token()}"}
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert client.request(method, "/dcmtier/", headers=auth).status_code == 405
    assert client.get("/dcmtier/docs", headers=auth).status_code == 404
    assert client.get("/dcmtier/openapi.json", headers=auth).status_code == 404


def test_the_overview_draws_its_charts_inline_and_loads_nothing_from_elsewhere(
    client: TestClient, processed: Path
) -> None:
    html = _get(client, "/dcmtier/")
    charts = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(charts) == 4  # savings, PSNR and SSIM rate-distortion, gate outcomes
    assert all("j2k-r20" in chart for chart in charts[:2] + charts[3:])
    assert "reference survey" in charts[1] and "polyline" in charts[1]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "http://" not in html and "https://" not in html and "@import" not in html
    assert PLANTED not in html and str(processed.parent) not in html
    # the truncated slice: one open failure per tier, each linking to the study page
    assert html.count("pixel data cannot be decoded") == 2
    assert f"/dcmtier/studies/{_study(processed)}/j2k-r20" in html
    assert "run by hand" in html  # `dcmtier process` made it: no task instance to link
    assert "Nothing waiting." in html  # the backlog view: no landing index (no DAG run)


def test_the_overview_lists_the_backlog_views_waiting_studies(
    airflow_db: Path, processed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue = tmp_path / "catalogue.db"
    shutil.copy(processed / "catalogue.db", catalogue)
    landed = write_ct_series(tmp_path / "landed", slices=2, rows=32, columns=32, seed=22)
    url = f"sqlite:///{catalogue}"
    assert main(["discover", str(tmp_path / "landed"), "--catalogue", url]) == 0
    with sqlite3.connect(catalogue) as conn:
        (waiting,) = conn.execute("SELECT study_uid FROM backlog").fetchone()
    with app_client(catalogue, monkeypatch) as client:
        html = _get(client, "/dcmtier/")
    backlog = html[html.index("<h2>Backlog</h2>") :]
    assert "1 waiting." in backlog and waiting in backlog
    assert "<td>2</td>" in backlog  # tiers pending: j2k-lossless and j2k-r20
    assert str(landed[0].parent) not in html


def test_the_overview_shows_what_the_web_viewers_made_of_each_tier(
    airflow_db: Path, processed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcmtier.catalogue.delivery import record_viewer_checks
    from tests.unit.catalogue.delivery_cases import viewer_row

    catalogue = tmp_path / "catalogue.db"
    shutil.copy(processed / "catalogue.db", catalogue)
    with app_client(catalogue, monkeypatch) as client:
        html = _get(client, "/dcmtier/")
    assert "No tier checked with the web viewers' codecs yet" in html
    record_viewer_checks(f"sqlite:///{catalogue}", [
        viewer_row("j2k-r20", "cornerstone-5.6.8", True, 0.25),
        viewer_row("j2k-r20", "cornerstone-5.14.0", True, 0.125),
        viewer_row("jxl-lossless", "cornerstone-5.6.8", False, None),
    ])  # fmt: skip
    with app_client(catalogue, monkeypatch) as client:
        html = _get(client, "/dcmtier/")
    section = html[html.index("<h2>What a web viewer sees</h2>") : html.index("<h2>Rate")]
    j2k = section[section.index("<td>j2k-r20</td>") :].split("</tr>")[0]
    assert "0.125" in j2k and "0.080" in j2k and "cornerstone-5.14.0, cornerstone-5.6.8" in j2k
    jxl = section[section.index("<td>jxl-lossless</td>") :].split("</tr>")[0]
    assert "<td>none</td>" in jxl


def test_the_study_page_shows_frames_lineage_package_and_the_worst_frames_difference(
    client: TestClient, processed: Path
) -> None:
    study = _study(processed)
    html = _get(client, f"/dcmtier/studies/{study}/j2k-r20")
    assert "partial 2/3 · 1 failed" in html
    charts = ("PSNR against own range (dB)", "SSIM against own range", "max |difference| (HU)",
              "pixel ratio (N:1)")  # fmt: skip
    for metric in charts:
        assert f"<title>{metric}" in html
    assert "against its own range of " in html  # the worst frame's, as the gates judge it
    assert "read from the Parquet" in html
    assert html.count('class="uid">2.25.') == 2  # two lineage rows, each with its derived UID
    png = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert png is not None and len(png.group(1)) > 200
    # beside it, the worst frame's original and derived through CT's three windows
    assert html.count('<img class="window"') == 6 and html.count("data:image/png") == 7
    for window in ("soft tissue<br><span class=\"muted\">W 400 / L 40 HU",
                   "lung<br><span class=\"muted\">W 1,500 / L -600 HU",
                   "bone<br><span class=\"muted\">W 1,800 / L 400 HU"):  # fmt: skip
        assert window in html
    assert f"/dcmtier/studies/{study}/j2k-r20/package.zip" in html
    assert PLANTED not in html and str(processed.parent) not in html
    lossless = _get(client, f"/dcmtier/studies/{study}/j2k-lossless")
    assert "Every frame is identical to its original" in lossless


def test_the_zip_downloads_as_written(client: TestClient, processed: Path) -> None:
    study = _study(processed)
    response = client.get(
        f"/dcmtier/studies/{study}/j2k-r20/package.zip",
        headers={"Authorization": f"Bearer {token()}"},
    )
    assert response.status_code == 200
    assert response.content == (processed / "packages" / study / "j2k-r20.zip").read_bytes()
    assert len(zipfile.ZipFile(BytesIO(response.content)).namelist()) == 3  # 2 + manifest


def test_an_unknown_study_or_task_instance_is_a_404_page(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {token()}"}
    assert client.get("/dcmtier/studies/1.2.3/j2k-r20", headers=auth).status_code == 404
    response = client.get("/dcmtier/ti/dag/run/summary/{MAP_INDEX}", headers=auth)
    assert response.status_code == 404 and "only the compress tasks" in response.text


def test_the_task_instance_tab_opens_the_study_tier_that_task_recorded(
    client: TestClient, processed: Path
) -> None:
    study = _study(processed)
    with sqlite3.connect(processed / "catalogue.db") as conn:  # as a DAG task would record it
        conn.execute(
            "UPDATE jobs SET dag_id = 'd', run_id = 'manual__2026-12-01T10:00:00+00:00', "
            "task_id = 'compress', map_index = 3 WHERE tier = 'j2k-r20'"
        )
    try:
        response = client.get(
            "/dcmtier/ti/d/manual__2026-12-01T10%3A00%3A00%2B00%3A00/compress/3",
            headers={"Authorization": f"Bearer {token()}"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == f"/dcmtier/studies/{study}/j2k-r20"
        html = _get(client, response.headers["location"])
        assert (
            'href="/dags/d/runs/manual__2026-12-01T10%3A00%3A00%2B00%3A00/tasks/compress/mapped/3"'
            in html
        )
    finally:
        with sqlite3.connect(processed / "catalogue.db") as conn:
            conn.execute("UPDATE jobs SET dag_id = 'cli', task_id = 'cli', map_index = -1")


def test_the_overview_shows_the_last_estimate_against_what_is_stored(
    airflow_db: Path, processed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from dcmtier.catalogue.engine import make_engine
    from dcmtier.catalogue.estimates import save

    catalogue = tmp_path / "catalogue.db"
    shutil.copy(processed / "catalogue.db", catalogue)
    with app_client(catalogue, monkeypatch) as client:
        assert "No estimate yet" in _get(client, "/dcmtier/")
    engine = make_engine(f"sqlite:///{catalogue}")
    with engine.connect() as conn:
        stored = int(
            conn.exec_driver_sql(
                "SELECT compressed_bytes FROM savings_by_tier WHERE tier = 'j2k-r20'"
            ).scalar_one()
        )
    line = {
        "scope": "tier",
        "tier": "j2k-r20",
        "studies": 1,
        "source_bytes": 1,
        "stored_bytes": stored * 2,
        "stored_bytes_low": stored,
        "stored_bytes_high": stored * 3,
    }
    with engine.begin() as conn:
        save(
            conn, "est-ui", datetime.now(UTC), [line], {"sample_studies": 1, "seed": 0, "slots": 1}
        )
    engine.dispose()
    with app_client(catalogue, monkeypatch) as client:
        html = _get(client, "/dcmtier/")
    forecast = html[html.index("<h2>Forecast against stored</h2>") : html.index("<h2>Backlog</h2>")]
    assert "est-ui" in forecast and "j2k-r20" in forecast
    assert "50.0%" in forecast and "inside the interval" in forecast
