"""The DAG on real Airflow (api-server, scheduler, dag-processor, two CeleryExecutor workers;
PostgreSQL metadata and catalogue) with a DICOMweb archive as landing area and another as
``publish_to``: two real Orthanc servers on loopback with authentication on
(``tests/orthanc.py``), their credentials only in the Airflow HTTP connection named by
``dicomweb_conn_id`` (``AIRFLOW_CONN_DCMTIER_PACS`` in the deployment's environment)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread

from dcmtier.catalogue import Catalogue
from dcmtier.storage import dicomweb
from tests.integration.airflow_stack import (
    DAG_ID,
    AirflowStack,
    deployment_databases,
    query,
    trigger_run,
    wait_run,
)
from tests.orthanc import PASSWORD, USER, Orthanc, running_orthanc, two_studies
from tests.support import gdcm_frames

TIERS = ["j2k-lossless", "j2k-r20"]
J2K_LOSSY = "1.2.840.10008.1.2.4.91"  # JPEG 2000 (lossy allowed)
CONN_ID = "dcmtier_pacs"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("deployment-dicomweb")
    uploads = two_studies(root / "uploads")
    with (
        running_orthanc(root / "pacs-source") as source,
        running_orthanc(root / "pacs-target") as target,
        deployment_databases("dcmtier_dw") as (metadata_url, catalogue_url),
    ):
        source.upload(*uploads)
        (root / "no-landing").mkdir()
        Catalogue.upgrade(catalogue_url)
        connection = {"conn_type": "http", "login": USER, "password": PASSWORD}
        stack = AirflowStack.configure(
            root / "airflow",
            metadata_url,
            redis_db=int(os.environ.get("DCMTIER_TEST_REDIS_DB", "11")),
            extra={
                "AIRFLOW_CONN_DCMTIER_CATALOGUE": catalogue_url,
                f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(connection),
                "DCMTIER_DATA_DIR": str(root / "output"),
                # the run the scheduler makes for the latest interval lands from an empty folder
                "DCMTIER_LANDING": str(root / "no-landing"),
                "DCMTIER_TASK_RETRIES": "0",
            },
        )
        for name in (dicomweb.ENV_USER, dicomweb.ENV_PASSWORD, dicomweb.ENV_TOKEN):
            stack.env.pop(name, None)  # the connection is the only way in
        try:
            stack.start()
            yield {"stack": stack, "source": source, "target": target, "uploads": uploads,
                   "output": root / "output", "catalogue": catalogue_url,
                   "metadata": metadata_url, "root": root}  # fmt: skip
        finally:
            stack.stop()


def test_a_run_takes_its_studies_from_an_archive_and_publishes_a_tier_to_another(
    deployment: dict[str, Any],
) -> None:
    stack, source, target = deployment["stack"], deployment["source"], deployment["target"]
    started = time.monotonic()
    first = _trigger(stack, source, target)
    assert wait_run(stack, first) == "success", _failed_logs(stack, first)
    first_s = time.monotonic() - started

    catalogue = deployment["catalogue"]
    uploads = [dcmread(p) for p in deployment["uploads"]]
    studies = {str(ds.StudyInstanceUID) for ds in uploads}
    jobs = query(catalogue, "SELECT study_uid, tier, count(*), min(status), max(status) "
                 "FROM jobs GROUP BY study_uid, tier")  # fmt: skip
    assert {(r[0], r[1]): r[2:] for r in jobs} == {
        (s, t): (1, "ok", "ok") for s in studies for t in TIERS
    }
    lineage = query(catalogue, "SELECT tier, count(*), count(DISTINCT source_sop_uid) "
                    "FROM lineage GROUP BY tier")  # fmt: skip
    assert sorted(tuple(r) for r in lineage) == [(t, 10, 10) for t in TIERS]

    output = deployment["output"]
    lossless = {p.stem: p for p in (output / "derived" / "j2k-lossless").rglob("*.dcm")}
    assert len(lossless) == 10
    for original in uploads:
        decoded = gdcm_frames(lossless[str(original.SOPInstanceUID)], deployment["root"])
        assert np.array_equal(decoded[0], original.pixel_array), original.SOPInstanceUID

    held = target.transfer_syntaxes()
    assert len(held) == 10 and set(held.values()) == {J2K_LOSSY}
    published_sql = ("SELECT derived_sop_uid, destination, study_uid, tier, sent, "
                     "first_published_at FROM publications ORDER BY derived_sop_uid")  # fmt: skip
    published = query(catalogue, published_sql)
    assert sorted(r[0] for r in published) == sorted(held)
    assert {(r[1], r[3], r[4]) for r in published} == {(target.url, "j2k-r20", True)}
    assert {r[2] for r in published} == studies
    assert _xcom(stack, first, "publish")["sent"] == 10

    second = _trigger(stack, source, target)  # reprocess none: nothing new
    assert wait_run(stack, second) == "success", _failed_logs(stack, second)
    assert _xcom(stack, second, "discover")["units"] == []
    assert _xcom(stack, second, "publish")["published"] is False
    assert len(target.transfer_syntaxes()) == 10
    assert query(catalogue, published_sql) == published
    assert query(catalogue, "SELECT count(*) FROM jobs") == [(len(studies) * len(TIERS),)]
    assert list((output / "staging").iterdir()) == []  # the retrieved instances are gone
    print(f"first run {first_s:.0f} s, both runs {time.monotonic() - started:.0f} s")

    _assert_no_credentials(deployment, [first, second])


def _assert_no_credentials(deployment: dict[str, Any], runs: list[str]) -> None:
    """The connection's password is in no task or process log, XCom, catalogue row or file
    under the output root."""
    stack: AirflowStack = deployment["stack"]
    secret = PASSWORD.encode()
    task_logs = [p for p in (stack.home / "logs").rglob("*") if p.is_file()]
    assert any(runs[0] in str(p) and b"published:" in p.read_bytes() for p in task_logs)
    files = [*task_logs, *stack.home.glob("*.log"),
             *(p for p in deployment["output"].rglob("*") if p.is_file())]  # fmt: skip
    assert [p for p in files if secret in p.read_bytes()] == []
    xcoms = query(deployment["metadata"], "SELECT task_id, value FROM xcom WHERE run_id = ANY(:r)",
                  r=runs)  # fmt: skip
    assert {r[0] for r in xcoms} >= {"discover", "compress", "publish", "summary"}
    assert PASSWORD not in repr(xcoms)
    tables = query(deployment["catalogue"], "SELECT table_name FROM information_schema.tables "
                   "WHERE table_schema = current_schema()")  # fmt: skip
    assert len(tables) > 10
    for (table,) in tables:
        rows = query(deployment["catalogue"], f'SELECT * FROM "{table}"')
        assert PASSWORD not in json.dumps(rows, default=str), table


def _trigger(stack: AirflowStack, source: Orthanc, target: Orthanc) -> str:
    conf = {"landing": source.url, "tiers": TIERS, "settle_seconds": 0,
            "publish_to": target.url, "publish_tiers": ["j2k-r20"],
            "dicomweb_conn_id": CONN_ID}  # fmt: skip
    return trigger_run(stack, conf)


def _xcom(stack: AirflowStack, run_id: str, task_id: str) -> Any:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    return stack.api("GET", path)["value"]


def _failed_logs(stack: AirflowStack, run_id: str) -> str:
    """The last lines of the logs of the run's tasks that did not succeed."""
    data = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")
    bad = {ti["task_id"] for ti in data["task_instances"] if ti["state"] != "success"}
    logs = [p for p in (stack.home / "logs").rglob("*")
            if p.is_file() and run_id in str(p) and any(t in str(p) for t in bad)]  # fmt: skip
    return "\n".join(f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-25:])
                     for p in logs) or f"not successful: {sorted(bad)}"  # fmt: skip
