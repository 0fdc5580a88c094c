"""Which catalogue the DAG's tasks and the compression pages use: one resolution, in the
manner of Airflow's provider hooks (``conn_name_attr`` names the attribute that holds the
connection id, ``default_conn_name`` its default).

The Airflow connection ``dcmtier_catalogue`` comes first, then ``$DCMTIER_CATALOGUE_URL``, then
the embedded SQLite catalogue of a data folder (`dcmtier.catalogue.engine.resolve_url`). Airflow
is imported only when a connection is looked up, so the package works without it: with no
Airflow installed, or no such connection, the environment and SQLite decide.

A task reads connections through the Task SDK (`CatalogueHook`); the api-server, which serves
the compression pages, is no task: there the SDK would see only environment variables and
secrets backends, not the connections kept in Airflow's database, so it reads them through
Airflow's own model (`ServerCatalogueHook`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from dcmtier.catalogue.engine import ENV_URL, resolve_url

log = logging.getLogger(__name__)


class CatalogueHook:
    """The catalogue URL as a task sees it."""

    conn_name_attr = "catalogue_conn_id"
    default_conn_name = "dcmtier_catalogue"
    conn_type = "postgres"
    hook_name = "dcmtier catalogue"

    def __init__(self, catalogue_conn_id: str | None = None) -> None:
        self.catalogue_conn_id = catalogue_conn_id or self.default_conn_name

    def get_conn_id(self) -> str:
        return str(getattr(self, self.conn_name_attr))

    def connection_uri(self) -> str | None:
        """The connection's URI; None without Airflow or without that connection."""
        conn_id = self.get_conn_id()
        try:
            return self._lookup(conn_id)
        except Exception as exc:  # ImportError, AirflowNotFoundException, no secrets backend
            log.debug("no %s connection (%s): using the environment or SQLite", conn_id, exc)
            return None

    def explicit_url(self) -> str | None:
        """The connection's URI, else ``$DCMTIER_CATALOGUE_URL``; None when neither is set."""
        return self.connection_uri() or os.environ.get(ENV_URL) or None

    def get_url(self, data_dir: Path | Callable[[str | None], Path]) -> str:
        """The catalogue URL: `explicit_url`, else SQLite in ``data_dir`` (a folder, or a
        function of the explicit URL that gives one or refuses, as an output root on object
        storage does when there is none)."""
        explicit = self.explicit_url()
        folder = data_dir if isinstance(data_dir, Path) else data_dir(explicit)
        return resolve_url(explicit, folder)

    def _lookup(self, conn_id: str) -> str:
        from airflow.sdk import BaseHook

        return str(BaseHook.get_connection(conn_id).get_uri())


class ServerCatalogueHook(CatalogueHook):
    """The catalogue URL as Airflow's api-server sees it (connections in its database too)."""

    def _lookup(self, conn_id: str) -> str:
        from airflow.models.connection import Connection

        return str(Connection.get_connection_from_secrets(conn_id).get_uri())
