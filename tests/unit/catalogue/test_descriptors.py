"""Series descriptors in the catalogue and the Parquet, and the analysts' views by them (SQLite;
tests/integration/test_catalogue_postgres.py runs the same checks on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from dcmtier.catalogue import Catalogue
from dcmtier.catalogue.engine import make_engine
from dcmtier.cli import main
from dcmtier.descriptors import series_descriptors, study_month
from tests.integration.descriptor_cases import (
    TIERS,
    check_groups,
    check_parquet_groups,
    check_views_add_up,
    make_mixed_landing,
    rows,
    series_without_days,
)


@pytest.fixture(scope="module")
def processed(
    tmp_path_factory: pytest.TempPathFactory, derived_inputs: dict[str, Path]
) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("descriptors")
    landing = make_mixed_landing(root / "landing", derived_inputs["monochrome1"])
    out = root / "out"
    tiers = [arg for tier in TIERS for arg in ("--tier", tier)]
    assert main(["process", str(landing), "--out", str(out), *tiers]) == 0
    return landing, out


def _url(out: Path) -> str:
    return f"sqlite:///{out / 'catalogue.db'}"


def test_the_grouped_views_add_up_to_the_per_tier_views(processed: tuple[Path, Path]) -> None:
    check_views_add_up(_url(processed[1]))


def test_each_modality_month_and_scanner_is_a_group(processed: tuple[Path, Path]) -> None:
    check_groups(_url(processed[1]))


def test_duckdb_groups_the_parquet_by_modality_as_the_view_does(
    processed: tuple[Path, Path],
) -> None:
    check_parquet_groups(_url(processed[1]), processed[1] / "quality")


def test_the_catalogue_keeps_the_month_never_the_day(processed: tuple[Path, Path]) -> None:
    assert series_without_days(_url(processed[1]), processed[0]) == []
    months = {r["study_month"] for r in rows(_url(processed[1]), "series")}
    assert "2024-01" in months


def test_the_migration_fills_descriptors_from_sources_then_from_outputs(
    processed: tuple[Path, Path], tmp_path: Path
) -> None:
    out = processed[1]
    copy = tmp_path / "catalogue.db"
    copy.write_bytes((out / "catalogue.db").read_bytes())
    url = f"sqlite:///{copy}"
    want = {r["series_uid"]: r for r in rows(url, "series")}
    assert all(r["manufacturer"] for r in want.values())
    Catalogue.downgrade(url, "0009")
    Catalogue.upgrade(url)
    assert {r["series_uid"]: r for r in rows(url, "series")} == want  # from the sources
    engine = make_engine(url)
    with engine.begin() as connection:  # the sources are gone: only the outputs remain
        connection.execute(text("UPDATE file_locations SET uri = uri || '.gone'"))
    engine.dispose()
    Catalogue.downgrade(url, "0009")
    Catalogue.upgrade(url)
    assert {r["series_uid"]: r for r in rows(url, "series")} == want
    check_views_add_up(url)


@pytest.mark.parametrize(
    ("header", "month"),
    [
        ({"StudyDate": "20240115"}, "2024-01"),
        ({"StudyDate": "", "SeriesDate": "19991231"}, "1999-12"),
        ({"AcquisitionDate": "20230704"}, "2023-07"),
        ({"StudyDate": "2024"}, None),  # not a DA value
        ({"StudyDate": "20241301"}, None),  # no month 13
        ({}, None),
    ],
)
def test_the_study_month_is_year_and_month_only(header: dict[str, str], month: str | None) -> None:
    assert study_month(header) == month


def test_descriptors_are_trimmed_and_missing_ones_are_none() -> None:
    found = series_descriptors(
        {"Modality": "MR", "Manufacturer": "  ACME   Imaging ", "PatientName": "DOE^JANE"}
    )
    assert found == {
        "modality": "MR",
        "body_part": None,
        "manufacturer": "ACME Imaging",
        "model": None,
        "study_month": None,
    }
    assert series_descriptors({})["modality"] == "OT"
