"""The one resolution of the catalogue URL that the tasks and the compression pages share."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest

from dcmtier.catalogue.engine import ENV_URL
from dcmtier.catalogue.hook import CatalogueHook, ServerCatalogueHook
from dcmtier.errors import ConfigError

HOOKS = [CatalogueHook, ServerCatalogueHook]
CONNECTION_ENV = "AIRFLOW_CONN_DCMTIER_CATALOGUE"


@pytest.fixture(autouse=True)
def _no_catalogue_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)
    monkeypatch.delenv(CONNECTION_ENV, raising=False)


def test_the_hook_names_its_connection_as_airflow_hooks_do() -> None:
    hook = CatalogueHook()
    assert hook.conn_name_attr == "catalogue_conn_id"
    assert hook.get_conn_id() == hook.default_conn_name == "dcmtier_catalogue"
    assert CatalogueHook("other").get_conn_id() == "other"


@pytest.mark.parametrize("hook", HOOKS)
def test_the_airflow_connection_comes_first(
    hook: type[CatalogueHook], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CONNECTION_ENV, "postgres://dcm:secret@db.example:5433/catalogue")
    monkeypatch.setenv(ENV_URL, "sqlite:////elsewhere/catalogue.db")
    url = hook().get_url(tmp_path)
    assert url == "postgresql+psycopg://dcm:secret@db.example:5433/catalogue"


@pytest.mark.parametrize("hook", HOOKS)
def test_another_connection_id_is_looked_up(
    hook: type[CatalogueHook], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ARCHIVE_DB", "postgres://a@h/x")
    monkeypatch.setenv(CONNECTION_ENV, "postgres://b@h/y")
    assert hook("archive_db").get_url(tmp_path) == "postgresql+psycopg://a@h/x"


@pytest.mark.parametrize("hook", HOOKS)
def test_without_a_connection_the_environment_then_sqlite_decide(
    hook: type[CatalogueHook], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert hook().connection_uri() is None
    assert hook().get_url(tmp_path) == f"sqlite:///{tmp_path / 'catalogue.db'}"
    monkeypatch.setenv(ENV_URL, "postgresql://c@h/z")
    assert hook().get_url(tmp_path) == "postgresql+psycopg://c@h/z"


def test_without_airflow_installed_the_environment_decides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_import = builtins.__import__

    def no_airflow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv(CONNECTION_ENV, "postgres://b@h/y")
    monkeypatch.setattr(builtins, "__import__", no_airflow)
    assert CatalogueHook().connection_uri() is None
    assert CatalogueHook().get_url(tmp_path) == f"sqlite:///{tmp_path / 'catalogue.db'}"


def test_the_data_folder_may_depend_on_the_explicit_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An output root on object storage refuses SQLite: its folder is asked with the URL."""
    asked: list[str | None] = []

    def folder(explicit: str | None) -> Path:
        asked.append(explicit)
        if explicit is None:
            raise ConfigError("an output on object storage needs a catalogue URL")
        return tmp_path

    with pytest.raises(ConfigError):
        CatalogueHook().get_url(folder)
    monkeypatch.setenv(ENV_URL, "postgresql://c@h/z")
    assert CatalogueHook().get_url(folder) == "postgresql+psycopg://c@h/z"
    assert asked == [None, "postgresql://c@h/z"]
