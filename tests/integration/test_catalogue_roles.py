"""On PostgreSQL the analyst role reads the views and nothing that holds a landing path.

A DAG run's discovery (landing index, claims on two tiers) and a run of ``dcmtier process``
(one of them) over a landing area whose folders and files are named after the patient fill a
fresh catalogue; then login users in ``dcmtier_analyst`` and ``dcmtier_operator`` (made by
migration 0005; 0009 grants its landing index, claims and ``backlog`` view the same way) query
it as analysts and operators would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dcmtier.catalogue import Catalogue
from dcmtier.catalogue.models import Base
from dcmtier.cli import main
from dcmtier.discovery.plan import PlanRequest, plan
from tests.faults.planted import (
    OPERATOR_TABLE,
    leaks_in_text,
    operator_table_holds_it,
    plant_landing,
    postgres_leaks,
)
from tests.integration.conftest import _admin, fresh_database

pytestmark = pytest.mark.postgres
VIEWS = (
    "savings_by_tier", "savings_by_study", "quality_by_tier", "lineage", "failures", "backlog",
    "savings_by_modality", "savings_by_month", "quality_by_modality", "quality_by_scanner",
    "delivery_by_tier",
    "estimate_vs_actual",
)  # fmt: skip
OPERATOR_ONLY = ("file_locations", "landing_files", "claims")  # paths, or run bookkeeping
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
        catalogue = Catalogue.connect(url)
        try:  # a DAG run's discovery: the study is indexed and both its tiers claimed
            request = PlanRequest(landing=str(root / "landing"), output=root / "out",
                                  tiers=["j2k-lossless", "j2k-r10"], run_id="manual__roles",
                                  now=datetime.now(UTC), settle_seconds=0)  # fmt: skip
            assert len(plan(request, catalogue).studies) == 1
        finally:
            catalogue.close()
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
    assert seen["savings_by_modality"] and seen["quality_by_scanner"]
    assert [row[3] for row in seen["backlog"]] == [1]  # j2k-r10 is not attempted yet
    assert all(leaks_in_text(view, str(rows)) == [] for view, rows in seen.items())
    assert all(str(LANDING[0]) not in str(rows) for rows in seen.values())  # keys, not paths


TABLES = sorted(t.name for t in Base.metadata.sorted_tables)


def test_the_tables_denied_include_the_locations_the_landing_index_and_claims() -> None:
    assert set(OPERATOR_ONLY) <= set(TABLES)


@pytest.mark.parametrize("table", TABLES)
def test_an_analyst_is_denied_every_table(login_as: object, table: str) -> None:
    denied = pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied")
    with login_as("dcmtier_analyst") as analyst, denied:  # type: ignore[operator]
        analyst.execute(f"SELECT * FROM {table}")


def test_an_operator_reads_the_locations_and_nothing_else_holds_them(
    login_as: object, planted_catalogue: str
) -> None:
    with login_as("dcmtier_operator") as operator:  # type: ignore[operator]
        located = operator.execute(f"SELECT file_key, uri FROM {OPERATOR_TABLE}").fetchall()
        indexed = operator.execute("SELECT uri FROM landing_files").fetchall()
        claimed = operator.execute("SELECT study_uid, tier FROM claims").fetchall()
        counted = {v: operator.execute(f"SELECT count(*) FROM {v}").fetchone() for v in VIEWS}
    # every view readable; those the analyst sees rows in (the test above) hold rows here too
    assert set(counted) == set(VIEWS) and len(VIEWS) == 11
    holding_rows = {view for view, row in counted.items() if row and row[0]}
    assert holding_rows >= {"failures", "savings_by_tier", "lineage", "backlog"}
    assert operator_table_holds_it(located) and len(located) == 6
    assert operator_table_holds_it(indexed) and len(indexed) == 6
    assert {tier for _, tier in claimed} == {"j2k-lossless", "j2k-r10"}
    assert postgres_leaks(planted_catalogue) == []  # every other table and view, as superuser
