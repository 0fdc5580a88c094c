"""Compression pages in the Airflow UI: savings and rate-distortion at a glance.

``plugins/dcmtier_plugin.py`` registers what this package defines: the FastAPI app (mounted
by the api-server at `URL_PREFIX`) and the UI's `EXTERNAL_VIEWS`, a "Compression" entry in
the navigation and a "Compression" tab on task instances, which opens the study x tier a
compress task worked on. Pages are server-rendered HTML with inline SVG charts: they need no
internet and run no third-party script.
"""

from __future__ import annotations

from typing import Any, Final

from dcmtier.ui.app import URL_PREFIX, create_app

PLUGIN_NAME: Final = "dcmtier"

EXTERNAL_VIEWS: Final[list[dict[str, Any]]] = [
    {
        "name": "Compression",
        "href": f"{URL_PREFIX}/",
        "destination": "nav",
        "url_route": "compression",
    },
    {
        # The UI fills the placeholders from the task instance on screen; an unmapped task
        # leaves {MAP_INDEX} as it is, which the app reads as -1.
        "name": "Compression",
        "href": f"{URL_PREFIX}/ti/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}/{{MAP_INDEX}}",
        "destination": "task_instance",
        "url_route": "compression-study",
    },
]


def fastapi_apps() -> list[dict[str, Any]]:
    """The ``fastapi_apps`` entry of the plugin: a new app each call."""
    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "dcmtier compression"}]


__all__ = ["EXTERNAL_VIEWS", "PLUGIN_NAME", "URL_PREFIX", "create_app", "fastapi_apps"]
