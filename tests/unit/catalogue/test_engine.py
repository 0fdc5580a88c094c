"""Where the catalogue lives: URL precedence, driver normalisation, hidden passwords."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcmtier.catalogue import CatalogueError, JobContext, resolve_url
from dcmtier.catalogue.engine import ENV_URL, is_default, safe_url, sqlite_path
from dcmtier.errors import DcmtierError


@pytest.fixture(autouse=True)
def _no_environment_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


def test_the_default_is_an_absolute_sqlite_file_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = resolve_url(None, Path("data"))
    assert url == f"sqlite:///{tmp_path}/data/catalogue.db"
    assert sqlite_path(url) == tmp_path / "data" / "catalogue.db"
    assert is_default(None)


def test_the_environment_wins_over_the_default_and_an_explicit_url_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_URL, "sqlite:////srv/env.db")
    assert resolve_url(None, tmp_path) == "sqlite:////srv/env.db"
    assert not is_default(None)
    assert resolve_url("sqlite:////srv/explicit.db", tmp_path) == "sqlite:////srv/explicit.db"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/cat", "postgresql+psycopg://u:p@db:5432/cat"),
        ("postgres://u@db/cat", "postgresql+psycopg://u@db/cat"),
        ("postgresql+psycopg2://u@db/cat", "postgresql+psycopg2://u@db/cat"),
        ("sqlite:///rel.db", "sqlite:///rel.db"),
    ],
    ids=["postgresql", "postgres-airflow-style", "explicit-driver-kept", "sqlite-untouched"],
)
def test_postgres_urls_get_the_psycopg_driver(given: str, expected: str, tmp_path: Path) -> None:
    assert resolve_url(given, tmp_path) == expected


def test_messages_never_show_the_password() -> None:
    assert "s3cret" not in safe_url("postgresql+psycopg://dcm:s3cret@db/cat")
    assert sqlite_path("postgresql+psycopg://dcm@db/cat") is None
    assert sqlite_path("sqlite://") is None


def test_a_malformed_url_is_a_catalogue_error() -> None:
    with pytest.raises(CatalogueError, match="not a database URL"):
        sqlite_path("not a url")
    assert issubclass(CatalogueError, DcmtierError)


def test_a_hand_run_is_the_cli_context() -> None:
    assert JobContext.cli("r1") == JobContext("cli", "r1", "cli", -1, 1)
