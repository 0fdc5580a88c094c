"""Tests of dcmtier.measure.store: the Parquet quality dataset and how analysts read it."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from dcmtier.measure.store import (
    PART_NAME,
    QUALITY_SCHEMA,
    SCHEMA_VERSION,
    QualityStoreError,
    partition_dir,
    read_dataset,
    read_partition,
    rows_to_table,
    write_partition,
)
from tests.support import dead_owner_token

STUDY_A = "1.2.826.0.1.3680043.8.498.10"
STUDY_B = "1.2.826.0.1.3680043.8.498.20"
WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
NULLABLE = {"target_ratio", "ssim", "ssim_range", "gate", "gate_action"}
NULLABLE |= {"modality", "body_part", "manufacturer", "model", "study_month"}
# What docs/analysts.md tells analysts to run; ``{root}`` is the quality root.
DUCKDB_QUERY = """
    SELECT tier, study, count(*) AS frames, sum(pixel_bytes_out) AS pixel_bytes_out
    FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true,
                      hive_types = {{'tier': VARCHAR, 'study': VARCHAR}})
    GROUP BY tier, study ORDER BY tier, study
"""


def _row(study: str, tier: str, source: str, frame: int, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "study_uid": study,
        "series_uid": f"{study}.1",
        "source_sop_uid": source,
        "derived_sop_uid": f"2.25.{abs(hash((source, tier))) % 10**12}",
        "frame": frame,
        "tier": tier,
        "codec": "j2k",
        "transfer_syntax": "1.2.840.10008.1.2.4.91",
        "strategy": "per_tier",
        "target_ratio": 20.0,
        "mse": 4.0,
        "psnr_db": 60.0,
        "psnr_peak": 4095.0,
        "ssim": 0.999,
        "pixel_match_pct": 80.0,
        "max_abs_diff": 12.0,
        "mean_abs_diff": 1.5,
        "unit": "HU",
        "psnr_db_range": 54.6,
        "ssim_range": 0.997,
        "data_range": 2200.0,
        "pixel_bytes_in": 524_288,
        "pixel_bytes_out": 26_000 + frame,
        "file_bytes_in": 526_000,
        "file_bytes_out": 28_000,
        "pixel_ratio": 524_288 / (26_000 + frame),
        "file_ratio": 526_000 / 28_000,
        "encode_ms": 30.0,
        "decode_ms": 10.0,
        "gate": None,
        "gate_action": None,
        "fell_back": False,
        "run_id": "manual__2024-05-06",
        "software": json.dumps({"dcmtier": "0.1.0"}),
        "computed_at": WHEN,
    }
    row.update(changes)
    return row


def _rows(study: str, tier: str, count: int) -> list[dict[str, object]]:
    return [_row(study, tier, f"{study}.1.{n}", 0) for n in range(1, count + 1)]


def _two_by_two(root: Path) -> None:
    for study, tier, count in [
        (STUDY_A, "j2k-r20", 3),
        (STUDY_A, "j2k-lossless", 2),
        (STUDY_B, "j2k-r20", 4),
        (STUDY_B, "j2k-lossless", 1),
    ]:
        write_partition(root, tier=tier, study_uid=study, rows=_rows(study, tier, count))


def _duck(query: str) -> duckdb.DuckDBPyRelation:
    relation = duckdb.sql(query)
    assert relation is not None, query
    return relation


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("name", "type_", "unit"),
    [
        ("study_uid", pa.string(), None),
        ("frame", pa.int32(), None),
        ("target_ratio", pa.float64(), None),
        ("mse", pa.float64(), "modality unit^2"),
        ("psnr_db", pa.float64(), "dB"),
        ("psnr_db_range", pa.float64(), "dB"),
        ("data_range", pa.float64(), "modality unit"),
        ("pixel_match_pct", pa.float64(), "%"),
        ("file_bytes_out", pa.int64(), "bytes"),
        ("encode_ms", pa.float64(), "ms"),
        ("computed_at", pa.timestamp("us", tz="UTC"), None),
    ],
    ids=str,
)
def test_the_schema_gives_each_field_its_type_and_unit(
    name: str, type_: pa.DataType, unit: str | None
) -> None:
    field = QUALITY_SCHEMA.field(name)

    assert field.type == type_
    assert (field.metadata or {}).get(b"unit") == (unit.encode() if unit else None)


def test_every_field_has_a_description_and_only_optional_metrics_are_nullable() -> None:
    assert all(field.metadata and field.metadata.get(b"description") for field in QUALITY_SCHEMA)
    assert {field.name for field in QUALITY_SCHEMA if field.nullable} == NULLABLE


def test_the_written_file_carries_the_schema_and_units(tmp_path: Path) -> None:
    path = write_partition(
        tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=_rows(STUDY_A, "j2k-r20", 2)
    )

    assert path == tmp_path / "tier=j2k-r20" / f"study={STUDY_A}" / PART_NAME
    schema = pq.read_schema(path)
    assert schema.equals(QUALITY_SCHEMA, check_metadata=True)
    assert schema.field("psnr_db").metadata[b"unit"] == b"dB"
    assert schema.metadata[b"dcmtier.version"] == SCHEMA_VERSION.encode() == b"4"
    assert pq.read_table(path).column("tier").to_pylist() == ["j2k-r20", "j2k-r20"]


def test_a_partition_from_before_the_range_columns_reads_with_them_null(tmp_path: Path) -> None:
    write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=_rows(STUDY_A, "j2k-r20", 1))
    old = partition_dir(tmp_path, tier="j2k-r20", study_uid=STUDY_B) / PART_NAME
    old.parent.mkdir(parents=True)
    table = rows_to_table(_rows(STUDY_B, "j2k-r20", 1), tier="j2k-r20", study_uid=STUDY_B)
    pq.write_table(table.drop_columns(["psnr_db_range", "ssim_range", "data_range"]), old)

    (row,) = read_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_B)
    assert (row["psnr_db"], row["psnr_db_range"], row["data_range"]) == (60.0, None, None)
    ranges = read_dataset(tmp_path).sort_by("study").column("data_range").to_pylist()
    assert ranges == [2200.0, None]


def test_writing_a_partition_again_replaces_its_rows(tmp_path: Path) -> None:
    write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=_rows(STUDY_A, "j2k-r20", 3))
    write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=_rows(STUDY_A, "j2k-r20", 2))

    assert read_dataset(tmp_path).num_rows == 2
    assert _tree(tmp_path) == [f"tier=j2k-r20/study={STUDY_A}/{PART_NAME}"]


def test_writing_a_partition_leaves_the_other_partitions_alone(tmp_path: Path) -> None:
    _two_by_two(tmp_path)
    write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=_rows(STUDY_A, "j2k-r20", 1))

    table = read_dataset(tmp_path)
    assert table.num_rows == 1 + 2 + 4 + 1


def test_an_empty_row_list_empties_the_partition(tmp_path: Path) -> None:
    write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=_rows(STUDY_A, "j2k-r20", 3))
    path = write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=[])

    assert pq.read_table(path).num_rows == 0
    assert read_dataset(tmp_path).num_rows == 0


def test_stray_files_and_stale_temporary_folders_are_removed(tmp_path: Path) -> None:
    partition = tmp_path / "tier=j2k-r20" / f"study={STUDY_A}"
    stale = tmp_path / "tier=j2k-r20" / f".study={STUDY_A}{dead_owner_token()}k1ll3d.tmp"
    for folder in (partition, stale):
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"x": [1]}), folder / "part-1.parquet")

    write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=_rows(STUDY_A, "j2k-r20", 1))

    assert _tree(tmp_path) == [f"tier=j2k-r20/study={STUDY_A}/{PART_NAME}"]
    assert not stale.exists()


def test_the_same_rows_in_any_order_give_byte_identical_files(tmp_path: Path) -> None:
    rows = [_row(STUDY_A, "j2k-r20", f"{STUDY_A}.1.{n}", f) for n in (3, 1, 2) for f in (1, 0)]
    first = write_partition(tmp_path / "a", tier="j2k-r20", study_uid=STUDY_A, rows=rows)
    second = write_partition(
        tmp_path / "b", tier="j2k-r20", study_uid=STUDY_A, rows=list(reversed(rows))
    )

    assert first.read_bytes() == second.read_bytes()
    table = pq.read_table(first)
    keys = list(zip(table["source_sop_uid"].to_pylist(), table["frame"].to_pylist(), strict=True))
    assert keys == sorted(keys)


def test_rows_may_leave_tier_and_study_to_the_partition(tmp_path: Path) -> None:
    row = _row(STUDY_A, "j2k-r20", f"{STUDY_A}.1.1", 0)
    del row["tier"], row["study_uid"]

    path = write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=[row])

    table = pq.read_table(path)
    assert table["tier"].to_pylist() == ["j2k-r20"]
    assert table["study_uid"].to_pylist() == [STUDY_A]


def test_two_studies_by_two_tiers_read_alike_in_duckdb_polars_and_pyarrow(tmp_path: Path) -> None:
    _two_by_two(tmp_path)
    expected = [
        ("j2k-lossless", STUDY_A, 2, 52_000),
        ("j2k-lossless", STUDY_B, 1, 26_000),
        ("j2k-r20", STUDY_A, 3, 78_000),
        ("j2k-r20", STUDY_B, 4, 104_000),
    ]

    from_duckdb = _duck(DUCKDB_QUERY.format(root=tmp_path)).fetchall()
    from_polars = (
        pl.scan_parquet(
            f"{tmp_path}/**/*.parquet",
            hive_partitioning=True,
            hive_schema={"tier": pl.String, "study": pl.String},
        )
        .group_by("tier", "study")
        .agg(pl.len().alias("frames"), pl.col("pixel_bytes_out").sum())
        .sort("tier", "study")
        .collect()
        .rows()
    )
    from_pyarrow = sorted(
        (r["tier"], r["study"], r["count_all"], r["pixel_bytes_out_sum"])
        for r in read_dataset(tmp_path)
        .group_by(["tier", "study"])
        .aggregate([([], "count_all"), ("pixel_bytes_out", "sum")])
        .to_pylist()
    )
    assert from_duckdb == from_polars == from_pyarrow == expected


def test_each_reader_shows_tier_once_and_study_as_a_string(tmp_path: Path) -> None:
    _two_by_two(tmp_path)

    duck = _duck(f"SELECT * FROM ({DUCKDB_QUERY.format(root=tmp_path)}) LIMIT 0")
    polars_schema = pl.scan_parquet(
        f"{tmp_path}/**/*.parquet",
        hive_partitioning=True,
        hive_schema={"tier": pl.String, "study": pl.String},
    ).collect_schema()
    raw_duck = _duck(
        f"SELECT * FROM read_parquet('{tmp_path}/**/*.parquet', hive_partitioning = true)"
    )
    arrow = read_dataset(tmp_path)

    assert duck.columns[:2] == ["tier", "study"]
    assert raw_duck.columns.count("tier") == 1
    assert raw_duck.columns == [*QUALITY_SCHEMA.names, "study"]
    assert list(polars_schema) == [*QUALITY_SCHEMA.names, "study"]
    assert polars_schema["study"] == pl.String
    assert arrow.column_names == [*QUALITY_SCHEMA.names, "study"]
    assert arrow.schema.field("study").type == pa.string()
    direct = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    assert direct.column_names.count("tier") == 1


def test_an_infinite_psnr_and_a_utc_timestamp_round_trip(tmp_path: Path) -> None:
    row = _row(STUDY_A, "j2k-lossless", f"{STUDY_A}.1.1", 0, psnr_db=math.inf, target_ratio=None)
    write_partition(tmp_path, tier="j2k-lossless", study_uid=STUDY_A, rows=[row])
    pattern = f"{tmp_path}/**/*.parquet"

    arrow = read_dataset(tmp_path).to_pylist()[0]
    duck = _duck(
        f"SELECT psnr_db, target_ratio FROM read_parquet('{pattern}', hive_partitioning = true)"
    ).fetchall()
    polars_psnr = pl.scan_parquet(pattern, hive_partitioning=True).collect()["psnr_db"][0]

    assert arrow["psnr_db"] == math.inf
    assert arrow["target_ratio"] is None
    assert arrow["computed_at"] == WHEN
    assert duck == [(math.inf, None)]
    assert polars_psnr == math.inf


@pytest.mark.parametrize("field", ["derived_sop_uid", "frame", "computed_at", "run_id", "mse"])
@pytest.mark.parametrize("how", ["absent", "null"])
def test_a_row_without_a_required_field_is_refused_naming_it(
    tmp_path: Path, field: str, how: str
) -> None:
    rows = _rows(STUDY_A, "j2k-r20", 2)
    if how == "absent":
        del rows[1][field]
    else:
        rows[1][field] = None

    with pytest.raises(QualityStoreError, match=rf"row 1 .*required fields \['{field}'\]"):
        write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=rows)
    assert _tree(tmp_path) == []


def test_a_refused_write_leaves_the_previous_partition_intact(tmp_path: Path) -> None:
    path = write_partition(
        tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=_rows(STUDY_A, "j2k-r20", 3)
    )
    before = path.read_bytes()
    bad = _rows(STUDY_A, "j2k-r20", 2)
    bad[0]["mse"] = "high"

    with pytest.raises(QualityStoreError, match="column mse does not hold double"):
        write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=bad)

    assert path.read_bytes() == before
    assert _tree(tmp_path) == [f"tier=j2k-r20/study={STUDY_A}/{PART_NAME}"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"psnr": 1.0}, r"fields \['psnr'\] are not in QUALITY_SCHEMA"),
        ({"tier": "j2k-r10"}, "belongs to tier 'j2k-r10'"),
        ({"study_uid": STUDY_B}, f"study '{STUDY_B}'"),
        ({"strategy": "both"}, "strategy 'both'"),
        ({"frame": 1.0}, "frame must be an int"),
        ({"computed_at": datetime(2024, 5, 6)}, "timezone-aware"),
        ({"software": "dcmtier 0.1"}, "software must be a JSON object"),
        ({"psnr_db": math.nan}, "psnr_db is NaN"),
        ({"psnr_db_range": math.nan}, "psnr_db_range is NaN"),
        ({"file_bytes_out": "many"}, "column file_bytes_out does not hold int64"),
    ],
    ids=[
        "unknown-field",
        "other-tier",
        "other-study",
        "unknown-strategy",
        "float-frame",
        "naive-time",
        "software-not-json",
        "nan-psnr",
        "nan-psnr-range",
        "wrong-type",
    ],
)
def test_a_malformed_row_is_refused(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    row = _row(STUDY_A, "j2k-r20", f"{STUDY_A}.1.1", 0)
    row.update(changes)

    with pytest.raises(QualityStoreError, match=message):
        write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=[row])


def test_a_repeated_instance_and_frame_is_refused(tmp_path: Path) -> None:
    rows = _rows(STUDY_A, "j2k-r20", 2) + _rows(STUDY_A, "j2k-r20", 1)

    with pytest.raises(QualityStoreError, match="repeated"):
        write_partition(tmp_path, tier="j2k-r20", study_uid=STUDY_A, rows=rows)


@pytest.mark.parametrize(
    ("tier", "study"),
    [("../j2k", STUDY_A), ("j2k-r20", "1.2/3"), ("j2k r20", STUDY_A), ("", STUDY_A)],
    ids=["dotdot-tier", "slash-study", "space-tier", "empty-tier"],
)
def test_a_tier_or_study_that_cannot_name_a_folder_is_refused(
    tmp_path: Path, tier: str, study: str
) -> None:
    with pytest.raises(QualityStoreError, match="cannot name a partition folder"):
        write_partition(tmp_path, tier=tier, study_uid=study, rows=[])
    assert list(tmp_path.iterdir()) == []
