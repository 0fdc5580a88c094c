"""On PostgreSQL the analyst role reads the views and nothing that holds a landing path.

A run of ``dcmtier process`` over a landing area whose folders and files are named after the
patient fills a fresh catalogue; then login users in ``dcmtier_analyst`` and
``dcmtier_operator`` (made by migration 0005) query it as analysts and operators would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dcmtier.catalogue import Catalogue
from dcmtier.catalogue.models import Base
from dcmtier.cli import main
from tests.faults.planted import (
    OPERATOR_TABLE,
    leaks_in_text,
    operator_table_holds_it,
    plant_landing,
    postgres_leaks,
)
from tests.integration.conftest import _admin, fresh_database

pytestmark = pytest.mark.postgres
VIEWS = ("savings_by_tier", "savings_by_study", "quality_by_tier", "lineage", "failures")
LANDING: list[Path] = []  # the planted landing area, once made


@pytest.fixture(scope="module")
def planted_catalogue(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("roles")
    plant_landing(root / "landing")
    LANDING.append(root / "landing")
    with fresh_database(postgres_server) as url:
        Catalogue.upgrade(url)
        argv = ["process", str(root / "landing"), "--out", str(root / "out"), "--catalogue", url,
                "--jobs", "1", "--tier", "j2k-lossless"]  # fmt: skip
        assert main(argv) == 1  # one failed slice, two stray files
        yield url


@pytest.fixture
def login_as(planted_catalogue: str) -> Iterator[object]:
    """Connect as a new login user who is a member of a group role; dropped afterwards."""
    made: list[str] = []

    def connect(group: str) -> psycopg.Connection[tuple[object, ...]]:
        user = f"dcmtier_test_{group.rsplit('_', 1)[-1]}_{uuid.uuid4().hex[:8]}"
        _admin(f'CREATE ROLE "{user}" LOGIN IN ROLE {group}')
        made.append(user)
        url = make_url(planted_catalogue)
        return psycopg.connect(
            host=url.host, port=url.port or 5432, dbname=url.database, user=user,
            autocommit=True,
        )  # fmt: skip

    yield connect
    for user in made:
        _admin(f'DROP ROLE IF EXISTS "{user}"')


def test_an_analyst_reads_every_view_and_no_path_through_any_of_them(login_as: object) -> None:
    with login_as("dcmtier_analyst") as analyst:  # type: ignore[operator]
        seen = {view: analyst.execute(f"SELECT * FROM {view}").fetchall() for view in VIEWS}
    assert seen["failures"] and seen["savings_by_tier"] and seen["lineage"]
    assert all(leaks_in_text(view, str(rows)) == [] for view, rows in seen.items())
    assert all(str(LANDING[0]) not in str(rows) for rows in seen.values())  # keys, not paths


@pytest.mark.parametrize("table", sorted(t.name for t in Base.metadata.sorted_tables))
def test_an_analyst_is_denied_every_table(login_as: object, table: str) -> None:
    denied = pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied")
    with login_as("dcmtier_analyst") as analyst, denied:  # type: ignore[operator]
        analyst.execute(f"SELECT * FROM {table}")


def test_an_operator_reads_the_locations_and_nothing_else_holds_them(
    login_as: object, planted_catalogue: str
) -> None:
    with login_as("dcmtier_operator") as operator:  # type: ignore[operator]
        located = operator.execute(f"SELECT file_key, uri FROM {OPERATOR_TABLE}").fetchall()
        assert operator.execute("SELECT count(*) FROM failures").fetchone() != (0,)
    assert operator_table_holds_it(located) and len(located) == 6
    assert postgres_leaks(planted_catalogue) == []  # every other table and view, as superuser
