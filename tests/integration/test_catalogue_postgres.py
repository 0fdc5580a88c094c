"""The catalogue on the real PostgreSQL: a full run, reruns, views against disk, migrations,
and several workers writing different tiers of one study at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydicom import dcmread

from dcmtier.catalogue import Catalogue, CatalogueError
from dcmtier.catalogue.engine import make_engine
from dcmtier.catalogue.models import Base
from dcmtier.catalogue.schema import VERSION_TABLE
from dcmtier.cli import main
from dcmtier.ui import queries
from tests.integration.catalogue_cases import (
    MEDIAN_CASES,
    TABLES,
    VIEWS,
    assert_backfill_survives_down_and_up,
    assert_lineage_names_strategy_and_layer,
    assert_medians,
    assert_views_match_disk,
    make_landing,
    record_synthetic,
    run_all,
    schema_names,
    view,
)
from tests.integration.conftest import fresh_database
from tests.integration.descriptor_cases import TIERS as DESCRIBED_TIERS
from tests.integration.descriptor_cases import (
    check_groups,
    check_parquet_groups,
    check_views_add_up,
    make_mixed_landing,
    series_without_days,
)

pytestmark = pytest.mark.postgres


def test_process_command_fills_every_table_and_a_rerun_changes_no_count(
    pg_catalogue: Catalogue, postgres: str, tmp_path: Path
) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    make_landing(landing)
    argv = ["process", str(landing), "--out", str(out), "--catalogue", postgres, "--jobs", "1",
            "--tier", "j2k-lossless", "--tier", "j2k-r10", "--tier", "htj2k-r10"]  # fmt: skip
    assert main([*argv, "--run-id", "first"]) == 1  # the truncated slice makes study a partial
    counts = pg_catalogue.row_counts()
    assert all(counts[table] > 0 for table in TABLES), counts
    assert not (out / "catalogue.db").exists()
    assert main([*argv, "--run-id", "first"]) == 1  # the same attempt again
    assert pg_catalogue.row_counts() == counts
    assert main([*argv, "--run-id", "second"]) == 1  # a new attempt per study x tier
    again = pg_catalogue.row_counts()
    assert again == {**counts, "jobs": counts["jobs"] + 6}
    assert {r["run_id"] for r in view(pg_catalogue, "lineage")} == {"second"}


def test_views_equal_the_files_on_disk(pg_catalogue: Catalogue, tmp_path: Path) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    broken = make_landing(landing)
    run_all(landing, out, pg_catalogue)
    assert_views_match_disk(pg_catalogue, landing, out, broken)
    failures = view(pg_catalogue, "failures")
    key = str(dcmread(broken, stop_before_pixels=True).SOPInstanceUID)  # named by file key
    assert {(f["file"], f["status"]) for f in failures} == {(key, "failed")}
    assert len(failures) == 3  # one per tier


def test_lineage_names_the_strategy_and_layer_that_made_each_instance(
    pg_catalogue: Catalogue, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    make_landing(landing)
    assert_lineage_names_strategy_and_layer(pg_catalogue, landing, tmp_path / "out")


def test_the_psnr_median_is_exact_and_keeps_infinity(
    pg_catalogue: Catalogue, tmp_path: Path
) -> None:
    record_synthetic(pg_catalogue, tmp_path / "landing")
    assert_medians(pg_catalogue)
    with pg_catalogue.engine.connect() as connection:  # the compression pages read the view
        shown = {row.tier: row.psnr_median for row in queries.figures(connection).tiers}
    assert shown == {tier: median for tier, (_, median) in MEDIAN_CASES.items()}


def test_migrations_upgrade_downgrade_and_upgrade_again(postgres_server: str) -> None:
    with fresh_database(postgres_server) as url:
        Catalogue.upgrade(url)
        _assert_matches_models(url)
        Catalogue.downgrade(url, "0001")
        assert not VIEWS & schema_names(url)[1]
        Catalogue.downgrade(url)
        assert schema_names(url) == ({VERSION_TABLE}, set())
        with pytest.raises(CatalogueError, match="db upgrade"):
            Catalogue.connect(url)
        Catalogue.upgrade(url)
        _assert_matches_models(url)
        Catalogue.connect(url).close()


def test_strategy_and_layer_go_down_and_come_back_from_job_parameters(
    postgres_server: str, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    make_landing(landing)
    with fresh_database(postgres_server) as url:
        Catalogue.upgrade(url)
        assert_backfill_survives_down_and_up(url, landing, tmp_path / "out")


def _assert_matches_models(url: str) -> None:
    """The migrated schema is what models.py declares, and every view is there."""
    engine = make_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()
    assert schema_names(url)[1] >= VIEWS


def _worker(url: str, folders: tuple[str, str], tier: str, index: int, start: object) -> None:
    """One Airflow-like task: every try of one tier of the one study, started with the others."""
    from dcmtier.catalogue import JobContext
    from tests.integration.catalogue_cases import run_all as run

    landing, out = folders
    catalogue = Catalogue.connect(url)
    start.wait(timeout=60)  # type: ignore[attr-defined]
    for try_number in (1, 2):
        context = JobContext("dcmtier", "concurrent", "process", index, try_number)
        run(Path(landing), Path(out), catalogue, run_id="concurrent", tiers=[tier], context=context)


def test_concurrent_workers_on_one_study_lose_and_duplicate_nothing(
    pg_catalogue: Catalogue, postgres: str, tmp_path: Path
) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    make_landing(landing)
    tiers = ["j2k-lossless", "j2k-r10", "htj2k-r10"]
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(len(tiers))
    workers = [
        spawn.Process(target=_worker, args=(postgres, (str(landing), str(out)), t, i, start))
        for i, t in enumerate(tiers)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0]  # a deadlock would have raised
    counts = pg_catalogue.row_counts()
    ok_instances = 2 * 3 - 1  # the truncated slice fails every tier
    assert counts == {
        "studies": 2, "series": 2, "instances": 6, "tiers": 3,
        "jobs": 2 * 2 * len(tiers),  # two studies x two tries per tier
        "derived_instances": ok_instances * len(tiers), "frame_quality": ok_instances * len(tiers),
        "packages": 2 * len(tiers), "failure_records": len(tiers), "unidentified_files": 0,
        "file_locations": 6,
        "landing_files": 0, "claims": 0,  # the unit of work plans nothing
        "publications": 0, "viewer_checks": 0, "estimates": 0,  # nor publishes, checks, estimates
    }  # fmt: skip
    statuses = pg_catalogue.pair_status(
        [r["study_uid"] for r in view(pg_catalogue, "studies")], tiers
    )
    assert sorted(statuses.values()) == ["ok"] * 3 + ["partial"] * 3


def test_the_views_by_descriptor_add_up_on_postgres(
    postgres_server: str, tmp_path: Path, derived_inputs: dict[str, Path]
) -> None:
    landing = make_mixed_landing(tmp_path / "landing", derived_inputs["monochrome1"])
    out = tmp_path / "out"
    tiers = [arg for tier in DESCRIBED_TIERS for arg in ("--tier", tier)]
    with fresh_database(postgres_server) as url:
        Catalogue.upgrade(url)
        assert main(["process", str(landing), "--out", str(out), "--catalogue", url, *tiers]) == 0
        check_views_add_up(url)
        check_groups(url)
        check_parquet_groups(url, out / "quality")
        assert series_without_days(url, landing) == []
