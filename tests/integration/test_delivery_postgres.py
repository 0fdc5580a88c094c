"""``viewer_checks`` and the ``delivery_by_tier`` view on PostgreSQL (its own aggregate)."""

from __future__ import annotations

import pytest

from dcmtier.catalogue import Catalogue
from tests.integration.conftest import fresh_database
from tests.unit.catalogue.delivery_cases import check_delivery_view

pytestmark = pytest.mark.postgres


def test_the_latest_check_per_tier_and_viewer_is_summed_up_per_tier(postgres_server: str) -> None:
    with fresh_database(postgres_server) as url:
        Catalogue.upgrade(url)
        check_delivery_view(url)
