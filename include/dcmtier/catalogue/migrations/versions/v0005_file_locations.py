"""Landing locations move to one operators' table, and PostgreSQL gets analyst and operator roles.

Landing folders and file names often carry patient names (exports named ``DOE_JANE_...``).
Up to 0004 the catalogue kept them in ``instances.file_uri``, ``failure_records.file`` (and in
the reasons that named the file) and ``unidentified_files.file``, and the analysts'
``failures`` view showed them. From 0005 a source file is named by its file key (its SOP
Instance UID, else a content hash: ``dcmtier.records.file_key``) everywhere but in
``file_locations`` (one row per file key and location, read by ``dcmtier locate``):

- ``instances.file_uri`` is dropped; its value moves to ``file_locations`` under the SOP UID;
- ``failure_records.file``, ``.source_key`` and ``unidentified_files.file`` hold the file key,
  and reasons and job errors name the file by its key where they named its recorded location.

The key of an existing row is its SOP Instance UID when valid, else the content hash of the
file if it is still readable at its absolute local path, else a hash of the recorded location
(what ``file_key`` does for a file it cannot read).

On PostgreSQL the migration makes two NOLOGIN group roles, to be granted to login users:
``dcmtier_analyst`` (SELECT on the five analyst views only; no table, so no location) and
``dcmtier_operator`` (SELECT on every catalogue table and view, ``file_locations`` included).
A view runs with its owner's privileges, so the analyst reads the views without reading the
tables under them. Roles belong to the whole server: they are made if missing (which needs
CREATEROLE; without it a DBA makes them first and the upgrade only grants), and a downgrade
revokes this database's grants but never drops them (other databases may use them). A later
migration that adds a table or a view grants it in the same way. SQLite has no roles.

Downgrade puts each file's latest location back into ``instances.file_uri`` and the keyed
columns; reasons keep naming files by key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import sqlalchemy as sa
from alembic import op

from dcmtier.catalogue.migrations import roles
from dcmtier.catalogue.migrations.roles import ANALYST, OPERATOR
from dcmtier.records import KEY_DIGITS, file_key, is_valid_uid

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYST_VIEWS = ("savings_by_tier", "savings_by_study", "quality_by_tier", "lineage", "failures")
TABLES = (
    "studies", "series", "instances", "tiers", "jobs", "derived_instances", "frame_quality",
    "packages", "failure_records", "unidentified_files", "file_locations",
)  # fmt: skip

_when = sa.DateTime(timezone=True)
_locations = sa.table(
    "file_locations",
    sa.column("id", sa.Integer()),
    sa.column("file_key", sa.String(64)),
    sa.column("uri", sa.Text()),
    sa.column("first_seen_at", _when),
    sa.column("last_seen_at", _when),
)
_instances = sa.table(
    "instances",
    sa.column("sop_uid", sa.String(64)),
    sa.column("file_uri", sa.Text()),
    sa.column("discovered_at", _when),
)
_failures = sa.table(
    "failure_records",
    sa.column("id", sa.Integer()),
    sa.column("study_uid", sa.String(64)),
    sa.column("tier", sa.String(32)),
    sa.column("source_key", sa.Text()),
    sa.column("sop_uid", sa.String(64)),
    sa.column("file", sa.Text()),
    sa.column("reason", sa.Text()),
    sa.column("first_seen_at", _when),
    sa.column("last_seen_at", _when),
)
_unidentified = sa.table(
    "unidentified_files",
    sa.column("file", sa.Text()),
    sa.column("reason", sa.Text()),
    sa.column("first_seen_at", _when),
    sa.column("last_seen_at", _when),
    sa.column("resolved_at", _when),
)
_jobs = sa.table("jobs", sa.column("id", sa.Integer()), sa.column("error", sa.Text()))


def upgrade() -> None:
    op.create_table(
        "file_locations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("file_key", sa.String(64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("first_seen_at", _when, nullable=False),
        sa.Column("last_seen_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_locations")),
        sa.UniqueConstraint("file_key", "uri", name=op.f("uq_file_locations_file_key")),
    )
    moved = _Moved()
    connection = op.get_bind()
    for sop_uid, uri, seen in connection.execute(sa.select(*_instances.c)):
        moved.add(sop_uid, uri, uri, seen, seen)
    _key_failures(connection, moved)
    _key_unidentified(connection, moved)
    _rename_in_errors(connection, moved)
    if moved.rows:
        connection.execute(_locations.insert(), list(moved.rows.values()))
    op.drop_column("instances", "file_uri")
    if connection.dialect.name == "postgresql":
        _grant_roles()


def _key_failures(connection: sa.Connection, moved: _Moved) -> None:
    """Name failed files by key; of two rows that now share a key, the later one stays."""
    query = sa.select(*_failures.c).where(_failures.c.file.is_not(None))
    kept: dict[tuple[str, str, str], Any] = {}
    for row in sorted(connection.execute(query), key=lambda r: (r.last_seen_at, r.id)):
        key = moved.add(row.sop_uid, _uri(row.file), row.file, row.first_seen_at, row.last_seen_at)
        source_key = row.sop_uid or key
        duplicate = kept.get((row.study_uid, row.tier, source_key))
        if duplicate is not None:
            connection.execute(_failures.delete().where(_failures.c.id == duplicate.id))
        kept[(row.study_uid, row.tier, source_key)] = row
        connection.execute(
            _failures.update()
            .where(_failures.c.id == row.id)
            .values(file=key, source_key=source_key, reason=row.reason.replace(row.file, key))
        )


def _key_unidentified(connection: sa.Connection, moved: _Moved) -> None:
    rows = sorted(connection.execute(sa.select(*_unidentified.c)), key=lambda r: r.last_seen_at)
    keyed: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = moved.add(None, _uri(row.file), row.file, row.first_seen_at, row.last_seen_at)
        keyed[key] = {**row._asdict(), "file": key, "reason": row.reason.replace(row.file, key)}
    connection.execute(_unidentified.delete())
    if keyed:
        connection.execute(_unidentified.insert(), list(keyed.values()))


def _rename_in_errors(connection: sa.Connection, moved: _Moved) -> None:
    """Job errors and whole-attempt failure reasons may quote a file: name it by key."""
    for table, column in ((_jobs, _jobs.c.error), (_failures, _failures.c.reason)):
        for row_id, text in connection.execute(sa.select(table.c.id, column)):
            renamed = moved.rename(text or "")
            if text and renamed != text:
                connection.execute(
                    table.update().where(table.c.id == row_id).values({column.name: renamed})
                )


class _Moved:
    """Locations found in the old columns, keyed, merged per (key, URI)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.names: dict[str, str] = {}  # a location as the old rows spelled it -> its key

    def add(self, sop_uid: str | None, uri: str, spelled: str, first: datetime,
            last: datetime) -> str:  # fmt: skip
        key = self.names.get(spelled) or _key(sop_uid, uri)
        self.names[spelled] = key
        row = self.rows.setdefault(
            (key, uri),
            {"file_key": key, "uri": uri, "first_seen_at": first, "last_seen_at": last},
        )
        row["first_seen_at"] = min(row["first_seen_at"], first)
        row["last_seen_at"] = max(row["last_seen_at"], last)
        return key

    def rename(self, text: str) -> str:
        for spelled in sorted(self.names, key=len, reverse=True):
            if spelled and spelled in text:
                text = text.replace(spelled, self.names[spelled])
        return text


def _uri(location: str) -> str:
    """A recorded location as a URI (``file:///...`` for absolute local paths)."""
    if "://" in location or not location.startswith("/"):
        return location
    return Path(location).as_uri()


def _key(sop_uid: str | None, uri: str) -> str:
    if sop_uid and is_valid_uid(sop_uid):
        return sop_uid
    if uri.startswith("file://"):
        return file_key(Path(unquote(urlparse(uri).path)))
    return hashlib.sha256(uri.encode()).hexdigest()[:KEY_DIGITS]


def _grant_roles() -> None:
    for role in (ANALYST, OPERATOR):
        op.execute(_CREATE_ROLE.replace("{role}", role))
    op.execute(
        sa.text(
            "DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO "
            f"{ANALYST}, {OPERATOR}', current_schema()); END $$"
        )
    )
    op.execute(f"GRANT SELECT ON {_names(ANALYST_VIEWS)} TO {ANALYST}")
    op.execute(f"GRANT SELECT ON {_names((*TABLES, *ANALYST_VIEWS))} TO {OPERATOR}")
    op.execute("REVOKE ALL ON file_locations FROM PUBLIC")


def _names(names: Iterable[str]) -> str:
    return ", ".join(names)


# Made if missing; two databases migrating at once may both try (the loser finds it made).
_CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
        CREATE ROLE {role} NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'creating role {role} needs CREATEROLE: have a database administrator '
            'run CREATE ROLE {role} NOLOGIN, then upgrade again';
END $$
"""


def downgrade() -> None:
    connection = op.get_bind()
    roles.revoke(ANALYST_VIEWS, TABLES)
    if connection.dialect.name == "postgresql":
        op.execute(
            sa.text(
                "DO $$ BEGIN EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM "
                f"{ANALYST}, {OPERATOR}', current_schema()); END $$"
            )
        )
    op.add_column("instances", sa.Column("file_uri", sa.Text(), nullable=False, server_default=""))
    latest = _latest_locations(connection)
    for sop_uid, uri in latest.items():
        connection.execute(
            _instances.update().where(_instances.c.sop_uid == sop_uid).values(file_uri=uri)
        )
    for row_id, key in connection.execute(sa.select(_failures.c.id, _failures.c.file)):
        if key in latest:
            connection.execute(
                _failures.update().where(_failures.c.id == row_id).values(file=latest[key])
            )
    rows = {latest.get(r.file, r.file): r for r in connection.execute(sa.select(*_unidentified.c))}
    connection.execute(_unidentified.delete())
    if rows:
        connection.execute(
            _unidentified.insert(), [{**r._asdict(), "file": uri} for uri, r in rows.items()]
        )
    op.drop_table("file_locations")


def _latest_locations(connection: sa.Connection) -> dict[str, str]:
    query = sa.select(_locations.c.file_key, _locations.c.uri).order_by(
        _locations.c.last_seen_at, _locations.c.id
    )
    return {key: uri for key, uri in connection.execute(query)}
