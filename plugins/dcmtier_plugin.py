"""The dcmtier Airflow plugin: compression pages at /dcmtier and their places in the UI.

Only wiring: the app, the views and their code live in the package (``dcmtier.ui``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from dcmtier.ui import EXTERNAL_VIEWS, PLUGIN_NAME, fastapi_apps


class DcmtierPlugin(AirflowPlugin):
    name = PLUGIN_NAME
    fastapi_apps = fastapi_apps()
    external_views = EXTERNAL_VIEWS
