"""``viewer_checks`` and the ``delivery_by_tier`` view on the embedded SQLite catalogue."""

from __future__ import annotations

from pathlib import Path

from dcmtier.catalogue import Catalogue
from tests.unit.catalogue.delivery_cases import check_delivery_view


def test_the_latest_check_per_tier_and_viewer_is_summed_up_per_tier(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalogue.db'}"
    Catalogue.upgrade(url)
    check_delivery_view(url)
