"""The quality dataset analysts query: Parquet, one row per (instance, frame, tier).

Layout: ``<quality_root>/tier=<tier>/study=<StudyInstanceUID>/part-0.parquet``, a Hive-style
partitioning with keys ``tier`` and ``study``. Each study x tier partition is one file, written
whole by `write_partition`, so a retried task replaces its partition rather than adding to it.

``tier`` is both a data column and a partition key. The file keeps the column so that a single
Parquet file says what it holds; `write_partition` refuses rows whose ``tier`` differs from the
partition's, so the two always agree. DuckDB, Polars and ``pyarrow.dataset`` each read such a
dataset without a duplicate-column error and show one ``tier`` column (taken from the path). The
study key is named ``study``, unlike the data column ``study_uid``: readers see both, with equal
values, and a filter on ``study`` prunes partitions. Hive values are strings; tell the reader so,
because type inference can turn a short UID such as ``1.2.3`` into a date (Polars does)::

    SELECT tier, count(*) AS frames, max(max_abs_diff) AS worst
    FROM read_parquet('<quality_root>/**/*.parquet', hive_partitioning = true,
                      hive_types = {'tier': VARCHAR, 'study': VARCHAR})
    GROUP BY tier ORDER BY tier

    polars.scan_parquet("<quality_root>/**/*.parquet", hive_partitioning=True,
                        hive_schema={"tier": polars.String, "study": polars.String})

The ``file_*`` columns describe the whole instance and repeat on each frame's row of a
multi-frame instance: sum them over rows with ``frame = 0``.

Glob ``**/*.parquet`` rather than naming the folder: while a partition is being written its
temporary file (``.study=<uid>~<owner>~<random>.tmp/part-0.parquet.tmp``) sits in the tree,
and Polars refuses a folder that holds files of two extensions. ``pyarrow.dataset`` skips it
(dot prefix).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, cast

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from dcmtier import owner

# The dataset's schema version, in each file's metadata ``dcmtier.version``; bump it here, once
# per change of columns, and say what changed:
#   2  gate_action and fell_back (what on_gate_failure did with a frame)
#   3  the series descriptors (modality, body_part, manufacturer, model, study_month)
#   4  psnr_db_range, ssim_range and data_range: PSNR and SSIM against the source frame's own
#      range, which gates and bounds judge (psnr_db, ssim and psnr_peak keep the nominal peak)
SCHEMA_VERSION: Final = "4"
PART_NAME: Final = "part-0.parquet"
PARTITION_KEYS: Final = ("tier", "study")
STRATEGIES: Final = frozenset({"per_tier", "layered"})

_PARTITION_VALUE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class QualityStoreError(Exception):
    """Rows cannot be stored: a field is missing, null, unknown, mistyped or duplicated."""


def _field(
    name: str,
    type_: pa.DataType,
    description: str,
    *,
    unit: str | None = None,
    nullable: bool = False,
) -> pa.Field:
    metadata = {"description": description} | ({"unit": unit} if unit else {})
    return pa.field(name, type_, nullable=nullable, metadata=metadata)


_S, _F, _I = pa.string(), pa.float64(), pa.int64()
_MU = "modality unit"  # the unit named in the row's ``unit`` column: HU for CT, else stored value

QUALITY_SCHEMA: Final = pa.schema(
    [
        _field("study_uid", _S, "Study Instance UID of the source instance"),
        _field("series_uid", _S, "Series Instance UID of the source instance"),
        _field("modality", _S, "Modality of the source series, e.g. CT, MR, CR", nullable=True),
        _field("body_part", _S, "Body Part Examined of the source series", nullable=True),
        _field("manufacturer", _S, "Manufacturer of the source series' scanner", nullable=True),
        _field("model", _S, "Manufacturer's Model Name of the scanner", nullable=True),
        _field(
            "study_month",
            _S,
            "Year and month of the study (YYYY-MM; never the day)",
            nullable=True,
        ),
        _field("source_sop_uid", _S, "SOP Instance UID of the source instance"),
        _field("derived_sop_uid", _S, "SOP Instance UID of the output (same if lossless)"),
        _field("frame", pa.int32(), "Frame index within the instance, counted from 0"),
        _field("tier", _S, "Tier name, e.g. j2k-r20; also the partition key 'tier'"),
        _field("codec", _S, "Codec label, e.g. j2k, htj2k, jls"),
        _field("transfer_syntax", _S, "Transfer Syntax UID of the output"),
        _field("strategy", _S, "How the output was encoded: per_tier or layered"),
        _field(
            "target_ratio", _F, "Nominal pixel ratio of the tier; null if lossless", nullable=True
        ),
        _field("mse", _F, "Mean squared error, original vs decoded", unit=f"{_MU}^2"),
        _field(
            "psnr_db",
            _F,
            "PSNR against psnr_peak (the reference survey's); +inf for identical frames",
            unit="dB",
        ),
        _field("psnr_peak", _F, "Nominal peak: (2^BitsStored - 1) x |slope|", unit=_MU),
        _field(
            "ssim",
            _F,
            "SSIM, Gaussian sigma 1.5, L = psnr_peak (the reference survey's); null if frame "
            "< 11x11",
            nullable=True,
        ),
        _field("pixel_match_pct", _F, "Share of stored values exactly equal", unit="%"),
        _field("max_abs_diff", _F, "Largest absolute difference", unit=_MU),
        _field("mean_abs_diff", _F, "Mean absolute difference", unit=_MU),
        _field("unit", _S, "Name of the modality unit of the metrics, e.g. HU"),
        _field(
            "psnr_db_range",
            _F,
            "PSNR against data_range (what gates judge); +inf for identical frames",
            unit="dB",
        ),
        _field(
            "ssim_range",
            _F,
            "SSIM, Gaussian sigma 1.5, L = data_range (what gates and SSIM bounds judge); "
            "null if frame < 11x11",
            nullable=True,
        ),
        _field(
            "data_range",
            _F,
            "The source frame's range: its 0.1st to 99.9th percentile x |slope|, at least |slope|",
            unit=_MU,
        ),
        _field("pixel_bytes_in", _I, "Uncompressed stored pixel bytes of the frame", unit="bytes"),
        _field("pixel_bytes_out", _I, "Encoded pixel bytes of the frame", unit="bytes"),
        _field("file_bytes_in", _I, "Source file size (per instance)", unit="bytes"),
        _field("file_bytes_out", _I, "Output file size (per instance)", unit="bytes"),
        _field("pixel_ratio", _F, "Achieved ratio pixel_bytes_in / pixel_bytes_out"),
        _field("file_ratio", _F, "Achieved ratio file_bytes_in / file_bytes_out (per instance)"),
        _field("encode_ms", _F, "Time to encode the frame", unit="ms"),
        _field("decode_ms", _F, "Time to decode the frame for verification", unit="ms"),
        _field(
            "gate",
            _S,
            "Quality rule the tier's encode of the frame broke; null when it passed",
            nullable=True,
        ),
        _field(
            "gate_action",
            _S,
            "What on_gate_failure did with a frame that broke its gate: fallback (recoded to "
            "meet it), reject (output not kept), keep (kept, flagged); null when it passed",
            nullable=True,
        ),
        _field(
            "fell_back",
            pa.bool_(),
            "The frame was recoded at a lower ratio to meet its gate; pixel_ratio is the one "
            "achieved",
        ),
        _field("run_id", _S, "Identifier of the run that computed the row"),
        _field("software", _S, "JSON object of package name to version"),
        _field("computed_at", pa.timestamp("us", tz="UTC"), "When the row was computed (UTC)"),
    ],
    metadata={"dcmtier.dataset": "quality", "dcmtier.version": SCHEMA_VERSION},
)

PARTITION_SCHEMA: Final = pa.schema([pa.field(k, pa.string()) for k in PARTITION_KEYS])
_REQUIRED: Final = tuple(f.name for f in QUALITY_SCHEMA if not f.nullable)
_FIELDS: Final = frozenset(QUALITY_SCHEMA.names)


def partition_dir(quality_root: Path, *, tier: str, study_uid: str) -> Path:
    """Return ``<quality_root>/tier=<tier>/study=<study_uid>``, refusing unsafe values.

    Raises
    ------
    QualityStoreError
        ``tier`` or ``study_uid`` holds characters other than letters, digits, ``.``, ``_``
        and ``-``, which would change the path or need escaping in the Hive key.
    """
    for key, value in (("tier", tier), ("study", study_uid)):
        if not _PARTITION_VALUE.match(value):
            raise QualityStoreError(f"{key} {value!r} cannot name a partition folder")
    return quality_root / f"tier={tier}" / f"study={study_uid}"


def rows_to_table(rows: Sequence[Mapping[str, object]], *, tier: str, study_uid: str) -> pa.Table:
    """Check rows of one study x tier and build the sorted `QUALITY_SCHEMA` table.

    Rows may omit ``tier`` and ``study_uid``; they are filled in from the arguments, and the
    gate outcome (``gate_action`` null, ``fell_back`` false: the frame met its gate).

    Raises
    ------
    QualityStoreError
        A row lacks a required field or has it null, has a field not in `QUALITY_SCHEMA`,
        belongs to another study or tier, has an unknown ``strategy`` or a naive
        ``computed_at``, repeats a (source_sop_uid, frame) pair, or holds a value of the wrong
        type. The message names the row and the field.
    """
    filled = [
        {"tier": tier, "study_uid": study_uid, "gate_action": None, "fell_back": False, **row}
        for row in rows
    ]
    for index, row in enumerate(filled):
        _check_row(index, row, tier=tier, study_uid=study_uid)
    filled.sort(key=lambda r: (str(r["source_sop_uid"]), cast(int, r["frame"])))
    _check_unique(filled)
    columns = [_column(field, filled) for field in QUALITY_SCHEMA]
    return pa.Table.from_arrays(columns, schema=QUALITY_SCHEMA)


def write_partition(
    quality_root: Path, *, tier: str, study_uid: str, rows: Sequence[Mapping[str, object]]
) -> Path:
    """Write the rows of one study x tier, replacing whatever that partition held.

    The file is written into a hidden temporary folder beside the partition and moved into it
    with ``os.replace``, which is atomic: a reader sees the old file or the new one, never a
    half-written file or both, and a retry leaves one file. (A whole folder cannot be swapped
    atomically on POSIX, hence a fixed file name in a fixed folder.) Temporary folders left by a
    killed writer of the same partition are removed first, so one partition must have one
    writer at a time. The same rows, in any order, give byte-identical files.

    Parameters
    ----------
    quality_root : Path
        Root of the dataset; created if needed.
    tier, study_uid : str
        The partition.
    rows : Sequence[Mapping[str, object]]
        One mapping per frame with the fields of `QUALITY_SCHEMA`. No rows writes an empty file.

    Returns
    -------
    Path
        ``<quality_root>/tier=<tier>/study=<study_uid>/part-0.parquet``.

    Raises
    ------
    QualityStoreError
        As `rows_to_table`, or the tier or UID cannot name a folder.
    """
    partition = partition_dir(quality_root, tier=tier, study_uid=study_uid)
    table = rows_to_table(rows, tier=tier, study_uid=study_uid)
    return _replace_partition(partition, table)


def read_partition(quality_root: Path, *, tier: str, study_uid: str) -> list[dict[str, Any]]:
    """The rows of one study x tier partition as written (none when it does not exist).

    Columns a partition written by an older dcmtier lacks come back as None.
    """
    path = partition_dir(quality_root, tier=tier, study_uid=study_uid) / PART_NAME
    if not path.exists():
        return []
    table = pq.read_table(path)
    rows = table.to_pylist()
    missing = [name for name in QUALITY_SCHEMA.names if name not in table.column_names]
    return [{**row, **dict.fromkeys(missing)} for row in rows]


def read_dataset(quality_root: Path) -> pa.Table:
    """Read every partition under ``quality_root`` as one table.

    Returns
    -------
    pyarrow.Table
        The `QUALITY_SCHEMA` columns plus the partition key ``study`` (a string).
    """
    schema = QUALITY_SCHEMA.append(pa.field("study", pa.string()))
    partitioning = ds.partitioning(PARTITION_SCHEMA, flavor="hive")
    dataset = ds.dataset(quality_root, format="parquet", partitioning=partitioning, schema=schema)
    return dataset.to_table()


def _column(field: pa.Field, rows: Sequence[Mapping[str, object]]) -> pa.Array:
    try:
        return pa.array([row.get(field.name) for row in rows], type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise QualityStoreError(f"column {field.name} does not hold {field.type}: {exc}") from exc


def _row_name(index: int, row: Mapping[str, object]) -> str:
    return f"row {index} (source {row.get('source_sop_uid')}, frame {row.get('frame')})"


def _check_row(index: int, row: Mapping[str, object], *, tier: str, study_uid: str) -> None:
    where = _row_name(index, row)
    unknown = sorted(set(row) - _FIELDS)
    if unknown:
        raise QualityStoreError(f"{where}: fields {unknown} are not in QUALITY_SCHEMA")
    missing = [name for name in _REQUIRED if row.get(name) is None]
    if missing:
        raise QualityStoreError(f"{where}: required fields {missing} are missing or null")
    if row["tier"] != tier or row["study_uid"] != study_uid:
        raise QualityStoreError(
            f"{where}: belongs to tier {row['tier']!r}, study {row['study_uid']!r}, "
            f"not to the partition tier {tier!r}, study {study_uid!r}"
        )
    _check_values(where, row)


def _check_values(where: str, row: Mapping[str, object]) -> None:
    frame = row["frame"]
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
        raise QualityStoreError(f"{where}: frame must be an int counted from 0, not {frame!r}")
    if row["strategy"] not in STRATEGIES:
        raise QualityStoreError(
            f"{where}: strategy {row['strategy']!r} not in {sorted(STRATEGIES)}"
        )
    computed_at = row["computed_at"]
    if not isinstance(computed_at, datetime) or computed_at.utcoffset() is None:
        raise QualityStoreError(f"{where}: computed_at must be a timezone-aware datetime")
    software = row["software"]
    if not isinstance(software, str) or not isinstance(_json_or_none(software), dict):
        raise QualityStoreError(f"{where}: software must be a JSON object in a string")
    for name in ("psnr_db", "psnr_db_range"):
        psnr = row[name]
        if isinstance(psnr, float) and math.isnan(psnr):
            raise QualityStoreError(f"{where}: {name} is NaN; identical frames have +inf")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _check_unique(rows: Sequence[Mapping[str, object]]) -> None:
    keys = [(r["source_sop_uid"], r["frame"]) for r in rows]
    repeated = sorted({a for a, b in itertools.pairwise(keys) if a == b}, key=str)
    if repeated:
        raise QualityStoreError(f"(source_sop_uid, frame) repeated: {repeated}")


def _replace_partition(partition: Path, table: pa.Table) -> Path:
    partition.parent.mkdir(parents=True, exist_ok=True)
    owner.remove_dead_temps(partition.parent)  # a killed writer cannot clean up after itself
    tmp_dir = owner.temp_file(partition, directory=True)  # named for this process
    try:
        # Not *.parquet, so a reader globbing **/*.parquet never picks it up mid-write.
        tmp_file = tmp_dir / f"{PART_NAME}.tmp"
        pq.write_table(table, tmp_file, compression="zstd")
        _fsync(tmp_file)
        partition.mkdir(exist_ok=True)
        final = partition / PART_NAME
        os.replace(tmp_file, final)
        _remove_other_entries(partition, keep=PART_NAME)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return final


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_other_entries(partition: Path, *, keep: str) -> None:
    # Files from any other writer would be read as more rows of the same partition.
    for entry in partition.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
