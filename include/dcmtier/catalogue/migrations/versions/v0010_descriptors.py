"""Series descriptors and the analysts' views grouped by them.

- ``series`` gains what analysts group by (``dcmtier.descriptors``): ``body_part``,
  ``manufacturer``, ``model`` and ``study_month`` (``YYYY-MM``; never the day, never a patient
  field), beside its ``modality``. Series recorded before this revision are filled from a
  header: the source file where the catalogue last saw it (``file_locations``), else one of
  the series' outputs (``derived_instances.output_uri``) when the sources are gone; a series
  whose files are all unreadable keeps NULLs.
- Four views, each with the columns of ``savings_by_tier`` or ``quality_by_tier`` plus its
  grouping columns, whose rows add up to those views' (per tier):

  - ``savings_by_modality`` (modality x tier) and ``savings_by_month`` (study_month x tier).
    Sizes are summed per instance, by its series' modality and its study's month (the
    earliest month of the study's series). A study's ZIP belongs to one group: its month, and
    for modality the one whose outputs are largest in that package (ties: the first by name),
    so ``zip_bytes`` add up too.
  - ``quality_by_modality`` (modality x tier) and ``quality_by_scanner`` (manufacturer x model
    x tier); both add ``ssim_median``.

  A NULL descriptor is a group of its own (shown as NULL). The SQL runs on PostgreSQL and
  SQLite alike, as in 0002: medians from ROW_NUMBER and COUNT windows, sums cast to BIGINT.

On PostgreSQL the analyst and operator roles get SELECT on the new views (0005's rule).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations import roles
from dcmtier.catalogue.migrations.quality import quality_view

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("body_part", 64), ("manufacturer", 64), ("model", 64), ("study_month", 7))

# per instance: its tier, study, sizes and descriptors ('' for NULL, so that joins match)
_DESCRIBED = """
    SELECT d.tier AS tier, d.study_uid AS study_uid, i.bytes AS original_bytes,
           d.bytes AS compressed_bytes, s.modality AS modality,
           COALESCE(m.study_month, '') AS study_month
    FROM derived_instances d
    JOIN instances i ON i.sop_uid = d.source_sop_uid
    JOIN series s ON s.series_uid = i.series_uid
    JOIN (SELECT study_uid, MIN(study_month) AS study_month FROM series GROUP BY study_uid) m
        ON m.study_uid = d.study_uid
"""

# the group each package (study x tier) belongs to: the key with the most output bytes
_OWNERS = """
    SELECT study_uid, tier, {key} AS key,
           ROW_NUMBER() OVER (PARTITION BY study_uid, tier
                              ORDER BY SUM(compressed_bytes) DESC, {key}) AS position
    FROM described
    GROUP BY study_uid, tier, {key}
"""


def savings_view(name: str, key: str) -> str:
    """``CREATE VIEW name``: savings_by_tier's columns per ``key`` x tier."""
    return f"""
CREATE VIEW {name} AS
WITH described AS ({_DESCRIBED}),
sizes AS (
    SELECT {key} AS key, tier,
           COUNT(DISTINCT study_uid) AS studies,
           COUNT(*) AS instances,
           SUM(original_bytes) AS original_bytes,
           SUM(compressed_bytes) AS compressed_bytes
    FROM described
    GROUP BY {key}, tier
),
owners AS ({_OWNERS.format(key=key)}),
zips AS (
    SELECT o.key AS key, p.tier AS tier, SUM(p.bytes) AS zip_bytes
    FROM packages p
    JOIN owners o ON o.study_uid = p.study_uid AND o.tier = p.tier AND o.position = 1
    GROUP BY o.key, p.tier
)
SELECT NULLIF(s.key, '') AS {key},
       s.tier AS tier,
       s.studies AS studies,
       s.instances AS instances,
       CAST(s.original_bytes AS BIGINT) AS original_bytes,
       CAST(s.compressed_bytes AS BIGINT) AS compressed_bytes,
       CAST(s.original_bytes - s.compressed_bytes AS BIGINT) AS saved_bytes,
       CAST(s.original_bytes AS DOUBLE PRECISION)
           / CAST(NULLIF(s.compressed_bytes, 0) AS DOUBLE PRECISION) AS ratio,
       CAST(COALESCE(z.zip_bytes, 0) AS BIGINT) AS zip_bytes
FROM sizes s
LEFT JOIN zips z ON z.key = s.key AND z.tier = s.tier
"""


VIEWS = {
    "savings_by_modality": savings_view("savings_by_modality", "modality"),
    "savings_by_month": savings_view("savings_by_month", "study_month"),
    "quality_by_modality": quality_view("quality_by_modality", ["modality"]),
    "quality_by_scanner": quality_view("quality_by_scanner", ["manufacturer", "model"]),
}


def upgrade() -> None:
    for column, width in COLUMNS:
        op.add_column("series", sa.Column(column, sa.String(width), nullable=True))
    _fill(op.get_bind())
    for sql in VIEWS.values():
        op.execute(sql)
    roles.grant(list(VIEWS))


def downgrade() -> None:
    roles.revoke(list(VIEWS))
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    with op.batch_alter_table("series", recreate="auto") as batch:
        for column, _ in reversed(COLUMNS):
            batch.drop_column(column)


def _fill(connection: sa.Connection) -> None:
    """Descriptors of the series already recorded, from one readable header of each."""
    from dcmtier.descriptors import series_descriptors

    for series_uid, locations in _locations(connection).items():
        header = _first_header(locations)
        if header is None:
            continue
        found = series_descriptors(header)
        connection.execute(
            sa.text(
                "UPDATE series SET body_part = :body_part, manufacturer = :manufacturer, "
                "model = :model, study_month = :study_month WHERE series_uid = :series_uid"
            ),
            {**{c: found[c] for c, _ in COLUMNS}, "series_uid": series_uid},
        )


def _locations(connection: sa.Connection) -> dict[str, list[str]]:
    """Per series, where its files may be read: sources first (latest seen), then outputs."""
    rows = connection.execute(
        sa.text(
            "SELECT i.series_uid, l.uri FROM instances i "
            "JOIN file_locations l ON l.file_key = i.sop_uid "
            "ORDER BY i.series_uid, l.last_seen_at DESC"
        )
    ).all()
    outputs = connection.execute(
        sa.text(
            "SELECT i.series_uid, d.output_uri FROM derived_instances d "
            "JOIN instances i ON i.sop_uid = d.source_sop_uid ORDER BY i.series_uid, d.id DESC"
        )
    ).all()
    found: dict[str, list[str]] = {}
    for series_uid, uri in [*rows, *outputs]:
        found.setdefault(series_uid, []).append(uri)
    return found


def _first_header(locations: Sequence[str]) -> Any:
    from pydicom import dcmread

    for location in locations[:8]:  # a series' files are all gone or few are
        try:
            with _open(location) as handle:
                return dcmread(handle, stop_before_pixels=True)
        except Exception:  # any unreadable file: try the next one
            continue
    return None


def _open(location: str) -> Any:
    """A binary file object for a path, a ``file://`` URI or an object store URL."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else location).open("rb")
    import fsspec

    return fsspec.open(location, "rb").open()
