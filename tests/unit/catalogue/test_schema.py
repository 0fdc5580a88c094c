"""Migrations on SQLite: they build exactly the models, go down and up again, and a catalogue
that is missing or behind is refused with the command that fixes it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from dcmtier.catalogue import Catalogue, CatalogueError
from dcmtier.catalogue.engine import make_engine
from dcmtier.catalogue.models import Base
from dcmtier.catalogue.schema import VERSION_TABLE, current_revision_at, head_revision
from dcmtier.cli import main
from dcmtier.sample import write_ct_series
from tests.integration.catalogue_cases import (
    BY_DESCRIPTOR,
    VIEWS,
    assert_backfill_survives_down_and_up,
    make_landing,
    schema_names,
)


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
    needs = rf"is at revision 0001, .* needs {head_revision()}: run `dcmtier"
    with pytest.raises(CatalogueError, match=needs):
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


def test_0005_moves_every_recorded_path_to_file_locations_and_names_files_by_key(
    tmp_path: Path,
) -> None:
    """A catalogue made before 0005 held landing paths in three tables and in reasons."""
    url = f"sqlite:///{tmp_path}/catalogue.db"
    Catalogue.upgrade(url, "0004")
    landing = tmp_path / "DOE_JANE"
    landing.mkdir()
    stray = landing / "notes.txt"
    stray.write_text("not DICOM\n")
    gone = "/archive/DOE_JANE/gone.bin"  # no longer readable: keyed by its location's hash
    sop, when = "1.2.3.4", "2026-01-01 00:00:00.000000"
    engine = make_engine(url)
    with engine.begin() as connection:
        for sql in (
            f"INSERT INTO studies VALUES ('1.2', 'CT', '{when}', '{when}')",
            "INSERT INTO series VALUES ('1.2.1', '1.2', 'CT', 1)",
            "INSERT INTO instances (sop_uid, series_uid, study_uid, file_uri, bytes, sha256, "
            f"modality, discovered_at) VALUES ('{sop}', '1.2.1', '1.2', "
            f"'file:///archive/DOE_JANE/a.dcm', 1, 'x', 'CT', '{when}')",
            "INSERT INTO tiers VALUES ('j2k-r5', 'j2k', 0, 5, 0, '1.2.840.10008.1.2.4.91', 'x')",
            "INSERT INTO jobs (study_uid, tier, dag_id, run_id, task_id, map_index, try_number, "
            "status, error, software, parameters, started_at) VALUES ('1.2', 'j2k-r5', 'cli', "
            f"'r', 't', -1, 1, 'failed', 'OSError: {gone}: gone', '{{}}', '{{}}', '{when}')",
            "INSERT INTO failure_records (study_uid, tier, source_key, sop_uid, file, status, "
            "reason, job_id, first_seen_at, last_seen_at) VALUES ('1.2', 'j2k-r5', "
            f"'/archive/DOE_JANE/a.dcm', '{sop}', '/archive/DOE_JANE/a.dcm', 'failed', "
            f"'/archive/DOE_JANE/a.dcm: bad', 1, '{when}', '{when}')",
            f"INSERT INTO unidentified_files VALUES ('{stray}', '{stray}: not DICOM', '{when}', "
            f"'{when}', NULL)",
            f"INSERT INTO unidentified_files VALUES ('{gone}', '{gone}: no', '{when}', '{when}', "
            "NULL)",
        ):
            connection.execute(text(sql))
    Catalogue.upgrade(url)
    stray_key = hashlib.sha256(stray.read_bytes()).hexdigest()[:32]
    gone_key = hashlib.sha256(Path(gone).absolute().as_posix().encode()).hexdigest()[:32]
    with engine.connect() as connection:
        located = set(connection.execute(text("SELECT file_key, uri FROM file_locations")))
        failures = set(connection.execute(text("SELECT file, reason FROM failures")))
        errors = list(connection.execute(text("SELECT error FROM jobs")))
        columns = [c[1] for c in connection.execute(text("PRAGMA table_info(instances)"))]
    engine.dispose()
    assert located == {
        (sop, "file:///archive/DOE_JANE/a.dcm"),
        (stray_key, stray.as_uri()),
        (gone_key, f"file://{gone}"),
    }
    assert failures == {
        (sop, f"{sop}: bad"),
        (stray_key, f"{stray_key}: not DICOM"),
        (gone_key, f"{gone_key}: no"),
    }
    assert errors == [(f"OSError: {gone_key}: gone",)]
    assert "file_uri" not in columns
    Catalogue.downgrade(url, "0004")  # the locations come back where they were
    engine = make_engine(url)
    with engine.connect() as connection:
        assert list(connection.execute(text("SELECT file_uri FROM instances"))) == [
            ("file:///archive/DOE_JANE/a.dcm",)
        ]
    engine.dispose()


def test_0008_duplicates_and_coded_precision_go_down_and_come_back(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "landing", slices=2, rows=32, columns=32, seed=2)
    shutil.copy(files[0], tmp_path / "landing" / "resent.dcm")  # the same instance again
    out = tmp_path / "out"
    assert (
        main(["process", str(tmp_path / "landing"), "--out", str(out), "--tier", "j2k-lossless"])
        == 0
    )  # fmt: skip  (a duplicate is no failure)
    url = f"sqlite:///{out / 'catalogue.db'}"
    engine = make_engine(url)
    query = "SELECT status, count(*) FROM failures GROUP BY status"
    with engine.connect() as connection:
        assert connection.execute(text(query)).all() == [("duplicate", 1)]
        bits = connection.execute(text("SELECT bits_stored FROM derived_instances")).scalars()
        assert set(bits) == {12}  # the precision coded: the series' Bits Stored
    Catalogue.downgrade(url, "0007")
    with engine.connect() as connection:
        assert connection.execute(text(query)).all() == []
        columns = connection.execute(text("PRAGMA table_info(derived_instances)")).all()
        assert "bits_stored" not in {c[1] for c in columns}
    # backlog comes with 0009, the views by descriptor with 0010, delivery_by_tier with 0014,
    # estimate_vs_actual with 0015
    assert schema_names(url)[1] == (
        VIEWS - {"backlog", "delivery_by_tier", "estimate_vs_actual"} - BY_DESCRIPTOR
    )
    Catalogue.upgrade(url)
    engine.dispose()
    assert current_revision_at(url) == head_revision() and schema_names(url)[1] == VIEWS
