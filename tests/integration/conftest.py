"""PostgreSQL for the integration tests: a fresh database per test session, built by Alembic.

The server is ``$DCMTIER_TEST_POSTGRES_URL`` (default the local one at 127.0.0.1:5432, user
postgres). When it cannot be reached the tests skip locally and fail in CI (``CI=true``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dcmtier.catalogue import Catalogue
from tests.support import skip_or_fail

SERVER_URL = os.environ.get(
    "DCMTIER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TABLES = (
    "failure_records, packages, frame_quality, derived_instances, jobs, instances, series, "
    "studies, tiers, unidentified_files, file_locations, landing_files, claims, viewer_checks"
)


def _admin(sql: str) -> None:
    import psycopg

    url = make_url(SERVER_URL)
    with psycopg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        dbname=url.database or "postgres", autocommit=True, connect_timeout=5,
    ) as connection:  # fmt: skip
        connection.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server URL, once it is known to answer."""
    import psycopg

    try:
        _admin("SELECT 1")
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at {make_url(SERVER_URL).render_as_string()} unreachable: {exc}")
    return SERVER_URL


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """Create ``dcmtier_test_<random>`` (empty), yield its URL, drop it."""
    name = f"dcmtier_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres(postgres_server: str) -> Iterator[str]:
    """URL of this session's database, at head via ``alembic upgrade head``."""
    with fresh_database(postgres_server) as url:
        Catalogue.upgrade(url)
        yield url


@pytest.fixture
def pg_catalogue(postgres: str) -> Iterator[Catalogue]:
    """The session database, emptied before each test."""
    catalogue = Catalogue.connect(postgres)
    with catalogue.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    yield catalogue
    catalogue.close()
