"""Both pages in headless Chromium (Debian's ``chromium``), saved and opened offline.

The pages are fetched signed in, written to files and opened with every host name resolving
nowhere: what draws must come from the saved file alone. The charts draw when the screenshot
holds the charts' own colours (nothing else on the page uses them) in quantity.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.support import skip_or_fail
from tests.unit.ui.conftest import app_client, token

DOCS = Path(__file__).resolve().parents[3] / "docs"
BLUE, GREEN, ORANGE = (0x00, 0x72, 0xB2), (0x00, 0x9E, 0x73), (0xD5, 0x5E, 0x00)
BUTTON = (0xEE, 0xF5, 0xFB)  # the Reprocess buttons' background (base.html)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        skip_or_fail("chromium is not installed (apt-get install chromium; CI does: see .ci/run)")
    return found


def _screenshot(html: str, tmp_path: Path, name: str, height: int) -> np.ndarray:
    page = tmp_path / f"{name}.html"
    page.write_text(html)
    shot = tmp_path / f"{name}.png"
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size=1280,{height}",
         f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    if os.environ.get("DCMTIER_SCREENSHOTS"):  # refresh the docs' pictures
        Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
            DOCS / f"ui-{name}.png", optimize=True
        )
    return np.asarray(Image.open(shot).convert("RGB")).astype(int)


def _pixels(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    return int((np.abs(image - np.array(colour)).max(axis=-1) <= tolerance).sum())


def test_the_overview_saved_and_opened_offline_draws_its_charts(
    client: TestClient, tmp_path: Path
) -> None:
    html = client.get("/dcmtier/", headers={"Authorization": f"Bearer {token()}"}).text
    image = _screenshot(html, tmp_path, "overview", 2200)
    assert (image < 250).any(axis=-1).mean() > 0.03  # not blank
    assert _pixels(image, BLUE) > 500  # stored-bytes bars and this archive's J2K curve
    assert _pixels(image, GREEN) > 300  # the gate chart's passed bars


def test_the_study_page_draws_its_frame_charts_the_windowed_frames_and_the_difference(
    client: TestClient, processed: Path, tmp_path: Path
) -> None:
    with sqlite3.connect(processed / "catalogue.db") as conn:
        study = conn.execute("SELECT study_uid FROM studies").fetchone()[0]
    shots = {}
    for role in ("viewer", "user"):  # a user may trigger the DAG: the Reprocess buttons
        html = client.get(f"/dcmtier/studies/{study}/j2k-r20",
                          headers={"Authorization": f"Bearer {token(role)}"}).text  # fmt: skip
        name = "study" if role == "user" else "study-viewer"
        shots[role] = _screenshot(html, tmp_path, name, 2200)
    image = shots["user"]
    assert _pixels(image, BLUE) > 100 and _pixels(image, ORANGE) > 100  # PSNR, max |diff|
    reddish = (image[..., 0] > 200) & (image[..., 1] < 180) & (image[..., 2] < 180)
    bluish = (image[..., 2] > 200) & (image[..., 0] < 180) & (image[..., 1] < 180)
    assert reddish.sum() > 200 and bluish.sum() > 200  # the difference image, both signs
    # the six windowed frames (256 px each): air is pure black in soft tissue and bone (no
    # text, chart or border on the page is), mid greys of tissue in all six
    black = int((image.max(axis=-1) <= 4).sum())
    grey = (
        (image.max(axis=-1) - image.min(axis=-1) <= 2)
        & (image[..., 0] > 40)
        & (image[..., 0] < 200)
    )
    assert black > 4 * 256 * 256 // 10, black
    assert int(grey.sum()) > 6 * 256 * 256 // 4, int(grey.sum())
    # four buttons (two tiers, all tiers, failed only) in their pale blue; none for a viewer
    assert _pixels(shots["viewer"], BUTTON, 2) < 50 < 4 * 600 < _pixels(image, BUTTON, 2)


def test_the_overview_draws_the_delivery_table_once_viewers_are_checked(
    airflow_db: Path, processed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcmtier.catalogue.delivery import record_viewer_checks
    from tests.unit.catalogue.delivery_cases import viewer_row

    catalogue = tmp_path / "catalogue.db"
    shutil.copy(processed / "catalogue.db", catalogue)
    shots = []
    for checked in ([], [viewer_row(tier, viewer, True, 0.5)
                         for tier in ("j2k-lossless", "j2k-r20", "htj2k-lossless", "jls-lossless")
                         for viewer in ("cornerstone-5.6.8", "cornerstone-5.14.0")]):  # fmt: skip
        if checked:
            record_viewer_checks(f"sqlite:///{catalogue}", checked)
        with app_client(catalogue, monkeypatch) as client:
            html = client.get("/dcmtier/", headers={"Authorization": f"Bearer {token()}"}).text
        start = html.index("<h2>What a web viewer sees</h2>")
        body = html[: html.index("<h2>Savings by tier</h2>")] + html[start : html.index("<h2>Rate")]
        shots.append(_screenshot(body, tmp_path, f"delivery-{len(checked)}", 900))
    dark = [int((shot < 128).all(axis=-1).sum()) for shot in shots]
    assert dark[1] > dark[0] + 3000, dark  # four rows of figures and viewer names drawn
