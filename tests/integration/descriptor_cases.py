"""A landing area of radiographs, CT and MR studies, and the checks that the analysts' views by
descriptor add up to ``savings_by_tier`` / ``quality_by_tier`` (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
from pydicom import dcmread
from sqlalchemy import text

from dcmtier.catalogue.engine import make_engine
from dcmtier.sample import write_ct_series
from tests.support import reference_file

TIERS = ("j2k-lossless", "j2k-r20")
SAVINGS_SUMS = ("instances", "original_bytes", "compressed_bytes", "saved_bytes", "zip_bytes")
QUALITY_SUMS = ("frames", "gate_failures", "fallback_frames")
# what each study of the landing area is, by its grouping values
MODALITIES = {"CT", "MR", "CR"}
MONTHS = {"2024-01", "2024-03", "2005-11", "2004-01"}


def make_mixed_landing(root: Path, radiograph: Path) -> Path:
    """CT and MR series (one study holds both), a radiograph and a scanner's CT slice."""
    study = "1.2.826.0.1.3680043.8.498.1001"
    write_ct_series(root / "ct", slices=3, rows=64, columns=64, seed=3, study_uid=study)
    write_ct_series(root / "ct-mr", slices=2, rows=64, columns=64, seed=4, study_uid=study,
                    modality="MR")  # fmt: skip
    write_ct_series(root / "mr", slices=2, rows=64, columns=64, seed=5, modality="MR",
                    study_date="20240310")  # fmt: skip
    shutil.copy(radiograph, root / "cr.dcm")  # SIEMENS Avanto, ABDOMEN, 2005-11
    shutil.copy(reference_file("CT_small.dcm"), root / "ct-small.dcm")  # GE, no body part
    return root


def rows(url: str, view: str) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(text(f"SELECT * FROM {view}"))]
    finally:
        engine.dispose()


def totals(found: list[dict[str, Any]], columns: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Per tier, the sums of ``columns`` over the rows of a grouped view."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0] * len(columns))
    for row in found:
        for n, column in enumerate(columns):
            sums[row["tier"]][n] += int(row[column])
    return {tier: tuple(values) for tier, values in sums.items()}


def check_views_add_up(url: str) -> None:
    """Each grouped view's rows add up to the per-tier view's, tier by tier."""
    by_tier = {r["tier"]: r for r in rows(url, "savings_by_tier")}
    want = {t: tuple(int(r[c]) for c in SAVINGS_SUMS) for t, r in by_tier.items()}
    assert set(want) == set(TIERS)
    for view in ("savings_by_modality", "savings_by_month"):
        assert totals(rows(url, view), SAVINGS_SUMS) == want, view
    quality = {r["tier"]: r for r in rows(url, "quality_by_tier")}
    want = {t: tuple(int(r[c]) for c in QUALITY_SUMS) for t, r in quality.items()}
    for view in ("quality_by_modality", "quality_by_scanner"):
        found = rows(url, view)
        assert totals(found, QUALITY_SUMS) == want, view
        for tier, row in quality.items():
            assert min(r["psnr_min"] for r in found if r["tier"] == tier) == row["psnr_min"]
            assert max(r["max_abs_diff"] for r in found if r["tier"] == tier) == row["max_abs_diff"]


def check_groups(url: str) -> None:
    """One row per modality (and month) and tier, with the descriptors the headers hold."""
    savings = rows(url, "savings_by_modality")
    assert sorted((r["modality"], r["tier"]) for r in savings) == sorted(
        (m, t) for m in MODALITIES for t in TIERS
    )
    assert {r["study_month"] for r in rows(url, "savings_by_month")} == MONTHS
    assert {r["modality"] for r in rows(url, "quality_by_modality")} == MODALITIES
    scanners = {(r["manufacturer"], r["model"]) for r in rows(url, "quality_by_scanner")}
    assert scanners == {
        ("dcmtier-sample", None),
        ("SIEMENS", "Avanto"),
        ("GE MEDICAL SYSTEMS", "RHAPSODE"),
    }


def check_parquet_groups(url: str, quality_root: Path) -> None:
    """DuckDB's GROUP BY modality over the Parquet counts the frames quality_by_modality does."""
    query = f"""
        SELECT modality, tier, count(*) AS frames
        FROM read_parquet('{quality_root}/**/*.parquet', hive_partitioning = true,
                          hive_types = {{'tier': VARCHAR, 'study': VARCHAR}})
        GROUP BY modality, tier
    """
    parquet = {(m, t): n for m, t, n in duckdb.sql(query).fetchall()}
    view = {(r["modality"], r["tier"]): int(r["frames"]) for r in rows(url, "quality_by_modality")}
    assert parquet == view and len(view) == len(MODALITIES) * len(TIERS)


DESCRIBED = ("modality", "body_part", "manufacturer", "model", "study_month")


def series_without_days(url: str, landing: Path) -> list[str]:
    """Every descriptor in ``series`` that holds a full date of the landing files (there must
    be none: year and month only). UIDs are left out: they often embed a date."""
    dates = set()
    for path in landing.rglob("*.dcm"):
        ds = dcmread(path, stop_before_pixels=True)
        dates |= {str(ds.get(k)) for k in ("StudyDate", "SeriesDate") if ds.get(k)}
    assert dates
    found = rows(url, "series")
    assert found and all(set(DESCRIBED) <= set(row) for row in found)
    return [
        str(row[column])
        for row in found
        for column in DESCRIBED
        if any(d in str(row[column]) for d in dates)
    ]
