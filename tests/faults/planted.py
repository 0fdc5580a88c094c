"""Patient data planted in a landing area, and the search for it in every place dcmtier writes.

The planted name is in folder names, file names and the DICOM headers (Patient's Name and
ID). Only DICOM headers (of the derived, packaged and quarantined copies) and the catalogue's
operator tables may hold it afterwards: ``file_locations`` (where each file was found, what
``dcmtier locate`` reads) and the landing index ``landing_files``. A file's path is patient data.
"""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dcmtier.sample import write_ct_series

PLANTED = "DOE_JANE_19700101"
NEEDLE = b"doe_jane"  # searched case-insensitively: any spelling of the name's start is a leak
OPERATOR_TABLE = "file_locations"  # where `dcmtier locate` looks
OPERATOR_TABLES = frozenset({OPERATOR_TABLE, "landing_files"})  # may hold landing paths
PATIENT_ELEMENTS = frozenset({"PatientName", "PatientID"})  # where plant_landing puts it


def plant_landing(root: Path) -> dict[str, Path]:
    """A small study exported into folders and files named after the patient, with:

    - three good slices named ``DOE_JANE_19700101_CT000N.dcm`` under ``DOE_JANE_19700101/CT``;
    - one slice whose pixel data is cut short (it fails, and is quarantined);
    - a DICOM file without any UID (it belongs to no study);
    - a text file named after the patient (not DICOM).

    Every DICOM header holds the name as Patient's Name and Patient ID.
    """
    study = root / PLANTED / f"{PLANTED}_CT"
    files = write_ct_series(study, slices=4, rows=64, columns=64, seed=20, patient_id=PLANTED)
    named = []
    for path in files:
        ds = dcmread(path)
        ds.PatientName = PLANTED
        target = path.with_name(f"{PLANTED}_{path.name}")
        ds.save_as(target)
        path.unlink()
        named.append(target)
    broken = named[-1]
    broken.write_bytes(broken.read_bytes()[:-3000])  # header intact: a failed instance
    no_uids = dcmread(named[0])
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        delattr(no_uids, keyword)
    del no_uids.file_meta.MediaStorageSOPInstanceUID
    orphan = root / PLANTED / f"{PLANTED}_export" / f"{PLANTED}_no_uid.dcm"
    orphan.parent.mkdir(parents=True)
    no_uids.save_as(orphan, enforce_file_format=False)
    text = root / PLANTED / f"{PLANTED}_notes.txt"
    text.write_text("exported by the scanner's console\n")
    return {"good": named[0], "broken": broken, "orphan": orphan, "text": text}


def leaks_in_text(where: str, text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [where] if NEEDLE in data.lower() else []


def leaks_under(root: Path) -> list[str]:
    """Every place under ``root`` that holds the planted name outside a DICOM header.

    File and folder names; DICOM files (anywhere, also as ZIP members) outside their header
    elements (the preamble, pixel data, any binary element); Parquet contents; every other
    file's bytes, except the SQLite catalogue (searched table by table: `catalogue_leaks`).
    """
    found: list[str] = []
    for path in sorted(root.rglob("*")):
        where = str(path.relative_to(root))
        found += leaks_in_text(f"name {where}", where)
        if not path.is_file() or path.name == "catalogue.db":
            continue
        if path.suffix == ".parquet":
            table = pq.read_table(path).to_pylist()
            found += leaks_in_text(where, json.dumps(table, default=str))
        elif path.suffix == ".zip":
            found += _zip_leaks(where, path)
        else:
            found += _file_leaks(where, path.name, path.read_bytes())
    return found


def _zip_leaks(where: str, path: Path) -> list[str]:
    found: list[str] = []
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            found += leaks_in_text(f"{where}: member name {member}", member)
            found += _file_leaks(f"{where}:{member}", member, zf.read(member))
    return found


def _file_leaks(where: str, name: str, data: bytes) -> list[str]:
    """A DICOM Part 10 file may hold the name in its patient elements, nowhere else."""
    count = data.lower().count(NEEDLE)
    if not count:
        return []
    ds = _dicom(data) if data[128:132] == b"DICM" else None
    if ds is None:  # not DICOM: nothing in it may hold the name
        return [where]
    allowed = 0
    outside: list[str] = []
    for element in _elements(ds):
        value = element.value if isinstance(element.value, bytes) else str(element.value)
        held = leaks_in_text(f"{where}: {element.keyword or element.tag}", value)
        if held and element.keyword in PATIENT_ELEMENTS:
            allowed += (value if isinstance(value, bytes) else value.encode()).lower().count(NEEDLE)
        elif held and element.VR != "SQ":  # a sequence's items are visited one by one
            outside += held
    if count > allowed and not outside:
        outside.append(f"{where}: outside its header elements")
    return outside


def _dicom(data: bytes) -> Dataset | None:
    try:
        return dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, OSError, KeyError, TypeError):
        return None


def _elements(ds: Dataset) -> Iterator[Any]:
    yield from getattr(ds, "file_meta", Dataset()).iterall()
    yield from ds.iterall()


def sqlite_leaks(path: Path) -> list[str]:
    """Rows of every table and view of a SQLite catalogue but the operator tables."""
    with sqlite3.connect(path) as connection:
        names = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"
            )
            if name not in OPERATOR_TABLES
        ]
        rows = {name: connection.execute(f'SELECT * FROM "{name}"').fetchall() for name in names}
    return _row_leaks(rows)


def postgres_leaks(url: str) -> list[str]:
    """Rows of every table and view of a PostgreSQL catalogue but the operator tables."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as connection:
        names = [
            name
            for (name,) in connection.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() ORDER BY table_name"
            )
            if name not in OPERATOR_TABLES
        ]
        rows = {n: connection.execute(f'SELECT * FROM "{n}"').fetchall() for n in names}  # type: ignore[call-overload]
    return _row_leaks(rows)


def _row_leaks(tables: dict[str, list[Any]]) -> list[str]:
    assert tables, "no catalogue table found"
    found: list[str] = []
    for name, rows in tables.items():
        found += leaks_in_text(f"catalogue {name}", json.dumps(rows, default=str))
    return found


def operator_table_holds_it(rows: Iterable[Any]) -> bool:
    """The operator table must hold the planted location: the search is not blind."""
    return any(NEEDLE in str(row).lower().encode() for row in rows)
