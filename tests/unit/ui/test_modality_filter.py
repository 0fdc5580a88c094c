"""The overview's modality filter: its tier figures are the views by modality's rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dcmtier.catalogue import Catalogue
from dcmtier.cli import main
from dcmtier.ui import queries
from tests.integration.descriptor_cases import TIERS, make_mixed_landing
from tests.unit.ui.conftest import app_client, token
from tests.unit.ui.test_queries import QUALITY, SAVINGS


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, derived_inputs: dict[str, Path]) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    landing = make_mixed_landing(root / "landing", derived_inputs["monochrome1"])
    tiers = [arg for tier in TIERS for arg in ("--tier", tier)]
    assert main(["process", str(landing), "--out", str(root / "out"), *tiers]) == 0
    return root / "out"


@pytest.mark.parametrize("modality", ["CT", "MR", "CR"])
def test_the_figures_of_a_modality_are_the_views_by_modality(mixed: Path, modality: str) -> None:
    catalogue = Catalogue.connect(f"sqlite:///{mixed / 'catalogue.db'}")
    try:
        views = catalogue.report(("savings_by_modality", "quality_by_modality"))
        with catalogue.engine.connect() as connection:
            tiers = {row.tier: row for row in queries.figures(connection, modality).tiers}
            everything = {row.tier: row for row in queries.figures(connection).tiers}
    finally:
        catalogue.close()
    savings = {r["tier"]: r for r in views["savings_by_modality"] if r["modality"] == modality}
    quality = {r["tier"]: r for r in views["quality_by_modality"] if r["modality"] == modality}
    assert set(tiers) == set(savings) == set(quality) == set(TIERS)
    for name, row in tiers.items():
        assert {c: getattr(row, c) for c in SAVINGS} == {c: savings[name][c] for c in SAVINGS}
        assert {c: getattr(row, c) for c in QUALITY} == {c: quality[name][c] for c in QUALITY}
        assert row.gate_passed + row.gate_failed == row.instances > 0
        assert row.instances < everything[name].instances  # a part of the whole


@pytest.fixture
def client(airflow_db: Path, mixed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with app_client(mixed / "catalogue.db", monkeypatch) as test_client:
        yield test_client


def _instances(html: str) -> dict[str, int]:
    """The savings table's instances per tier, as the page shows them."""
    html = html[html.index("<h2>Savings by tier") : html.index("<h2>Rate")]
    rows = re.findall(r"<tr><td>([a-z0-9-]+)</td><td class=\"n\">[\d,]+</td>"
                      r"<td class=\"n\">([\d,]+)</td>", html)  # fmt: skip
    return {tier: int(count.replace(",", "")) for tier, count in rows}


def test_the_page_offers_each_modality_and_shows_the_one_chosen(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {token()}"}
    everything = client.get("/dcmtier/", headers=auth)
    assert everything.status_code == 200
    assert re.findall(r'<option value="(\w*)"', everything.text) == ["", "CR", "CT", "MR"]
    only_mr = client.get("/dcmtier/?modality=MR", headers=auth)
    assert only_mr.status_code == 200
    assert '<option value="MR" selected>' in only_mr.text
    assert _instances(everything.text) == dict.fromkeys(TIERS, 9)
    assert _instances(only_mr.text) == dict.fromkeys(TIERS, 4)
    none = client.get("/dcmtier/?modality=XA", headers=auth)  # no such series: empty, not an error
    assert none.status_code == 200 and _instances(none.text) == {}
