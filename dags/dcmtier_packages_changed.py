"""
### dcmtier_packages_changed

An example of a downstream DAG: it runs when `dicom_archive_compression` emits
`dcmtier_packages` asset events and lists what changed (study, tier, status, package and its
sha256, from each event's `extra`). It does nothing else: copy it as the start of a PACS upload,
a replication or a retention job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Asset, dag, task

from dcmtier.orchestration.assets import PACKAGES_ASSET

PACKAGES = Asset(name=PACKAGES_ASSET[0], uri=PACKAGES_ASSET[1])


@dag(
    dag_id="dcmtier_packages_changed",
    schedule=[PACKAGES],
    start_date=datetime(2020, 1, 1),
    catchup=False,
    tags=["dicom", "dcmtier", "example"],
    doc_md=__doc__,
)
def dcmtier_packages_changed() -> None:
    @task
    def list_changes(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        from dcmtier.orchestration.tasks import changed_packages

        return changed_packages(triggering_asset_events)

    list_changes()


dcmtier_packages_changed()
