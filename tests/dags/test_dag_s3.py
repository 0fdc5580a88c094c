"""The DAG end to end with landing and output on S3 (``dag.test()``), against the tests' S3 API
server on loopback reached through ``AWS_ENDPOINT_URL``."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from airflow.dag_processing.dagbag import DagBag
from pydicom import dcmread

from dcmtier.sample import write_ct_series
from tests.objstore import S3Process, environment, s3_server, upload_folder

DAG_ID = "dicom_archive_compression"
DAGS = Path(__file__).resolve().parents[2] / "dags"
TIERS = ["j2k-lossless", "j2k-r20", "j2k-r50"]
TOP_LEVEL = {"derived", "quality", "packages", "cache", "quarantine", "work"}


def _catalogue(tmp_path: Path) -> tuple[Path, str]:
    """An embedded catalogue migrated as a user would (``dcmtier db upgrade``): file and URL."""
    db = tmp_path / "catalogue.db"
    catalogue = f"sqlite:///{db}"
    upgrade = [sys.executable, "-m", "dcmtier.cli", "db", "upgrade", "--catalogue", catalogue]
    subprocess.run(upgrade, check=True, capture_output=True)
    return db, catalogue


def _buckets(s3: S3Process, landing: Path, prefix: str) -> Any:
    """The ``landing`` and ``archive`` buckets, ``landing`` holding the folder under ``prefix``;
    returns a boto3 client of the server."""
    client = s3.client()
    client.create_bucket(Bucket="landing")
    client.create_bucket(Bucket="archive")
    upload_folder(s3, landing, "landing", prefix)
    return client


def test_a_run_with_output_on_s3_publishes_every_study_tier_and_leaves_no_temporary_object(
    airflow_db: Path, tmp_path: Path
) -> None:
    paths = write_ct_series(tmp_path / "landing", slices=3, rows=128, columns=128, seed=11)
    study = str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    broken = paths[1]
    broken_uid = str(dcmread(broken, stop_before_pixels=True).SOPInstanceUID)
    broken.write_bytes(broken.read_bytes()[:-3000])  # header readable, pixel data cut short
    db, catalogue = _catalogue(tmp_path)
    with s3_server() as s3:
        client = _buckets(s3, tmp_path / "landing", "ward7")
        env = {**s3.env, "DCMTIER_CATALOGUE_URL": catalogue,
               "DCMTIER_SCRATCH": str(tmp_path / "scratch")}  # fmt: skip
        with environment(env):
            run = _run("s3://landing/ward7", "s3://archive/dcm")
        states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
        assert str(run.state).endswith("success"), states
        objects = s3.objects("archive", "dcm/")
        assert s3.uploads("archive") == []
        keys = [k.removeprefix("dcm/") for k in objects]
        assert {k.split("/")[0] for k in keys} <= TOP_LEVEL
        assert not [k for k in keys if ".tmp" in k or k.startswith(("work/publish", "cache/"))]
        assert [k for k in keys if k.startswith("work/") and k.endswith(f"/{study}.json")]
        for tier in TIERS:
            assert len([k for k in keys if k.startswith(f"derived/{tier}/{study}/")]) == 2
            (part,) = [k for k in keys if k.startswith(f"quality/tier={tier}/study={study}/")]
            body = client.get_object(Bucket="archive", Key=f"dcm/{part}")["Body"].read()
            assert pq.read_table(io.BytesIO(body)).num_rows == 2
        assert f"quarantine/{study}/{broken_uid}.dcm" in keys
        assert f"quarantine/{study}/{broken_uid}.reason.json" in keys

    with sqlite3.connect(db) as connection:
        uris = {r[0] for r in connection.execute("SELECT uri FROM packages")}
        savings = dict(connection.execute("SELECT tier, zip_bytes FROM savings_by_tier"))
        layers = dict(connection.execute("SELECT tier, max(layer) FROM lineage GROUP BY tier"))
    assert uris == {f"s3://archive/dcm/packages/{study}/{t}.zip" for t in TIERS}
    # the rate tiers are cut from the layered encode (at their own layer, or at a ladder layer
    # where a frame fell back to meet the range-based gate, as 128 x 128 slices do at r20)
    assert layers["j2k-lossless"] is None and layers["j2k-r50"] >= 1 and layers["j2k-r20"] >= 2
    for tier in TIERS:
        assert savings[tier] == objects[f"dcm/packages/{study}/{tier}.zip"]["Size"]


def test_the_stores_credentials_and_endpoint_can_come_from_an_airflow_connection(
    airflow_db: Path, tmp_path: Path
) -> None:
    """No ``AWS_*`` endpoint or credential variable is set: the endpoint and the key pair come
    only from the ``aws`` connection named in the ``storage_conn_id`` param (here from
    ``AIRFLOW_CONN_…``)."""
    import fsspec

    paths = write_ct_series(tmp_path / "landing", slices=2, rows=64, columns=64, seed=12)
    study = str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    db, catalogue = _catalogue(tmp_path)
    with s3_server() as s3:
        _buckets(s3, tmp_path / "landing", "ward8")
        assert not {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"} & set(os.environ)  # fmt: skip
        connection = {
            "conn_type": "aws", "login": "dcmtier-test", "password": "dcmtier-test-secret",
            "extra": {"endpoint_url": s3.endpoint, "region_name": "us-east-1"},
        }  # fmt: skip
        env = {"AIRFLOW_CONN_DCMTIER_S3": json.dumps(connection),
               "DCMTIER_CATALOGUE_URL": catalogue,
               "DCMTIER_SCRATCH": str(tmp_path / "scratch")}  # fmt: skip
        try:
            with environment(env):
                run = _run("s3://landing/ward8", "s3://archive/dcm", storage_conn_id="dcmtier_s3")
        finally:
            fsspec.config.conf.pop("s3", None)  # what the connection set for this process
        states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
        assert str(run.state).endswith("success"), states
        objects = s3.objects("archive", "dcm/")
    for tier in TIERS:
        assert f"dcm/packages/{study}/{tier}.zip" in objects
    with sqlite3.connect(db) as connection_:
        uris = {r[0] for r in connection_.execute("SELECT uri FROM packages")}
    assert uris == {f"s3://archive/dcm/packages/{study}/{t}.zip" for t in TIERS}


def _run(landing: str, output: str, **params: str) -> Any:
    dag = DagBag(dag_folder=str(DAGS)).dags[DAG_ID]
    conf = {"landing": landing, "output": output, "tiers": TIERS, "settle_seconds": 0, **params}
    return dag.test(run_conf=conf)
