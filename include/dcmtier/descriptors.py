"""What analysts group by, read from a series' header: modality, body part, scanner, month.

The descriptors carry no patient identifier and no full date: the study's year and month only
(``2024-03``), never the day. They are kept with the series in the catalogue (``series``
table) and repeated on every row of the quality Parquet, so DuckDB or Polars group by them
without a join.

A header is read through ``.get`` only, so this module needs no DICOM library: a pydicom
``Dataset`` or a plain mapping of keywords both work.
"""

from __future__ import annotations

import re
from typing import Any, Final, Protocol

# The descriptor columns, in the order the catalogue and the Parquet dataset show them.
DESCRIPTORS: Final = ("modality", "body_part", "manufacturer", "model", "study_month")
# The longest text kept per column (the catalogue's column widths).
WIDTHS: Final = {"modality": 16, "body_part": 64, "manufacturer": 64, "model": 64}

_DATE: Final = re.compile(r"^\s*(\d{4})(\d{2})")


class Header(Protocol):
    def get(self, key: str, default: Any = None, /) -> Any: ...


def series_descriptors(header: Header) -> dict[str, str | None]:
    """The descriptors of the series ``header`` belongs to; None where the header lacks one.

    ``study_month`` is ``YYYY-MM`` from Study Date, else Series Date, else Acquisition Date
    (a study without a Study Date still gets the month it was acquired in); a date that is
    not a DICOM DA value gives None.
    """
    return {
        "modality": _text(header, "Modality", "modality") or "OT",
        "body_part": _text(header, "BodyPartExamined", "body_part"),
        "manufacturer": _text(header, "Manufacturer", "manufacturer"),
        "model": _text(header, "ManufacturerModelName", "model"),
        "study_month": study_month(header),
    }


def study_month(header: Header) -> str | None:
    """``YYYY-MM`` of the first DICOM date the header has of Study, Series, Acquisition Date."""
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate"):
        found = _DATE.match(str(header.get(keyword) or ""))
        if found and 1 <= int(found[2]) <= 12:
            return f"{found[1]}-{found[2]}"
    return None


def _text(header: Header, keyword: str, column: str) -> str | None:
    value = " ".join(str(header.get(keyword) or "").split())
    return value[: WIDTHS[column]] or None
