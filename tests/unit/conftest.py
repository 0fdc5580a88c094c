"""Fixtures the unit tests of several stages share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dcmtier.catalogue import Catalogue


@pytest.fixture
def catalogue(tmp_path: Path) -> Iterator[Catalogue]:
    """A migrated embedded (SQLite) catalogue of the test's own."""
    url = f"sqlite:///{tmp_path}/catalogue.db"
    Catalogue.upgrade(url)
    opened = Catalogue.connect(url)
    yield opened
    opened.close()
