"""The DAG end to end (``dag.test()``) with a DICOMweb archive as landing area and another as
``publish_to``: two real Orthanc servers on loopback (``tests/orthanc.py``), their credentials
only in the Airflow HTTP connection named by ``dicomweb_conn_id`` (in the first run its
default, ``$DCMTIER_DICOMWEB_CONN_ID``, as a scheduled run has it)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from airflow.dag_processing.dagbag import DagBag

from dcmtier.sample import write_ct_series
from dcmtier.storage import dicomweb
from tests.objstore import environment
from tests.orthanc import PASSWORD, USER, running_orthanc

DAG_ID = "dicom_archive_compression"
DAGS = Path(__file__).resolve().parents[2] / "dags"
J2K_LOSSY = "1.2.840.10008.1.2.4.91"


def test_a_run_takes_its_studies_from_an_archive_and_publishes_a_tier_to_another(
    airflow_db: Path, tmp_path: Path
) -> None:
    assert not {dicomweb.ENV_USER, dicomweb.ENV_TOKEN} & set(os.environ)
    paths = write_ct_series(tmp_path / "landing", slices=3, rows=64, columns=64, seed=40)
    paths += write_ct_series(tmp_path / "landing2", slices=2, rows=64, columns=64, seed=41)
    out = tmp_path / "out"
    connection = {"conn_type": "http", "login": USER, "password": PASSWORD}
    env = {"AIRFLOW_CONN_DCMTIER_PACS": json.dumps(connection), "DCMTIER_SCRATCH": str(tmp_path),
           "DCMTIER_DICOMWEB_CONN_ID": "dcmtier_pacs"}  # fmt: skip
    with (
        running_orthanc(tmp_path / "source") as source,
        running_orthanc(tmp_path / "target") as target,
    ):
        source.upload(*paths)
        try:
            with environment(env):
                run = _run(source.url, out, publish_to=target.url)  # the param's default
                again = _run(
                    source.url, out, publish_to=target.url, dicomweb_conn_id="dcmtier_pacs"
                )
        finally:
            dicomweb.configure(None)  # what the connection set for this process
        states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
        assert str(run.state).endswith("success"), states
        held = target.transfer_syntaxes()
    assert len(held) == 5 and set(held.values()) == {J2K_LOSSY}
    assert len(list((out / "derived" / "j2k-lossless").rglob("*.dcm"))) == 5
    assert str(again.state).endswith("success")
    with sqlite3.connect(out / "catalogue.db") as db:
        published = db.execute("SELECT derived_sop_uid, destination FROM publications").fetchall()
        landing = db.execute("SELECT COUNT(*) FROM landing_files WHERE gone_at IS NULL").fetchone()
    assert sorted(uid for uid, _ in published) == sorted(held)
    assert {dest for _, dest in published} == {target.url} and landing == (5,)


def _run(landing: str, out: Path, **params: str) -> Any:
    dag = DagBag(dag_folder=str(DAGS)).dags[DAG_ID]
    conf = {
        "landing": landing, "output": str(out), "tiers": ["j2k-lossless", "j2k-r20"],
        "publish_tiers": ["j2k-r20"], "settle_seconds": 0, **params,
    }  # fmt: skip
    return dag.test(run_conf=conf)
