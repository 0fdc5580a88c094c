"""Migrations on SQLite: they build exactly the models, go down and up again, and a catalogue
that is missing or behind is refused with the command that fixes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from dcmtier.catalogue import Catalogue, CatalogueError
from dcmtier.catalogue.engine import make_engine
from dcmtier.catalogue.models import Base
from dcmtier.catalogue.schema import VERSION_TABLE, current_revision_at, head_revision
from tests.integration.catalogue_cases import (
    assert_backfill_survives_down_and_up,
    make_landing,
    schema_names,
)

VIEWS = {
    "savings_by_tier",
    "savings_by_study",
    "quality_by_tier",
    "lineage",
    "failures",
    "backlog",
}


def test_upgrade_builds_the_models_and_every_view(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new/catalogue.db"
    Catalogue.upgrade(url)  # the folder is created
    engine = make_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()
    tables, views = schema_names(url)
    assert tables == {t.name for t in Base.metadata.sorted_tables} | {VERSION_TABLE}
    assert views == VIEWS
    assert current_revision_at(url) == head_revision()


def test_downgrade_to_base_then_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/catalogue.db"
    Catalogue.upgrade(url)
    Catalogue.downgrade(url, "0001")
    assert schema_names(url)[1] == set()
    Catalogue.downgrade(url)
    assert schema_names(url) == ({VERSION_TABLE}, set())
    assert current_revision_at(url) is None
    Catalogue.upgrade(url)
    assert schema_names(url)[1] == VIEWS
    Catalogue.connect(url).close()


def test_strategy_and_layer_go_down_and_come_back_from_job_parameters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/catalogue.db"
    Catalogue.upgrade(url)
    landing = tmp_path / "landing"
    make_landing(landing)
    assert_backfill_survives_down_and_up(url, landing, tmp_path / "out")


def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/absent.db"
    with pytest.raises(CatalogueError, match=r"no catalogue at .*dcmtier db upgrade"):
        Catalogue.connect(url)
    assert current_revision_at(url) is None
    assert not (tmp_path / "absent.db").exists()


def test_a_catalogue_behind_the_code_is_refused_with_the_fix(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/catalogue.db"
    Catalogue.upgrade(url, "0001")
    with pytest.raises(CatalogueError, match=r"is at revision 0001, .* needs 0005: run `dcmtier"):
        Catalogue.connect(url)
    empty = make_engine(f"sqlite:///{tmp_path}/empty.db")
    with empty.begin() as connection:
        connection.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    empty.dispose()
    with pytest.raises(CatalogueError, match="has no dcmtier schema"):
        Catalogue.connect(f"sqlite:///{tmp_path}/empty.db")


def test_an_unreachable_server_is_one_line() -> None:
    with pytest.raises(CatalogueError) as caught:
        Catalogue.connect("postgresql://nobody@127.0.0.1:1/none")
    message = str(caught.value)
    assert message.startswith("cannot reach the catalogue at postgresql+psycopg://nobody@")
    assert "\n" not in message


def test_an_unknown_revision_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="migrating the catalogue"):
        Catalogue.upgrade(f"sqlite:///{tmp_path}/catalogue.db", "9999")
