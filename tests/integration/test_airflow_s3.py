"""The DAG on real Airflow with two CeleryExecutor workers that share no folder: landing and
output on the tests' S3 API server on loopback, each worker with a scratch folder of its own
(as on two hosts); they share only the metadata database, the catalogue and the store."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydicom import dcmread

from dcmtier.catalogue import Catalogue
from dcmtier.packaging.package import MANIFEST_NAME
from dcmtier.sample import write_ct_series
from tests.integration.airflow_stack import (
    AirflowStack,
    deployment_databases,
    trigger_run,
    wait_run,
)
from tests.objstore import s3_server, upload_folder

TIERS = ["j2k-lossless", "j2k-r20", "j2k-r50"]  # two rate tiers: the encode task runs
SLICES = 3

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("deployment-s3")
    with deployment_databases("dcmtier_it") as (metadata_url, catalogue_url):
        Catalogue.upgrade(catalogue_url)
        with s3_server() as s3:
            for bucket in ("landing", "archive"):
                s3.client().create_bucket(Bucket=bucket)
            stack = AirflowStack.configure(
                root / "airflow",
                metadata_url,
                redis_db=int(os.environ.get("DCMTIER_TEST_REDIS_DB", "11")),
                extra={
                    **s3.env,
                    "AIRFLOW_CONN_DCMTIER_CATALOGUE": catalogue_url,
                    "DCMTIER_LANDING": "s3://landing/in",
                    "DCMTIER_DATA_DIR": "s3://archive/dcm",
                    "DCMTIER_TASK_RETRIES": "0",
                },
            )
            scratch = {name: root / f"{name}-scratch" for name in ("worker1", "worker2")}
            try:
                stack.start(
                    worker_env={name: {"DCMTIER_SCRATCH": str(p)} for name, p in scratch.items()}
                )
                yield {"stack": stack, "s3": s3, "root": root, "catalogue": catalogue_url,
                       "scratch": scratch}  # fmt: skip
            finally:
                stack.stop()


def test_two_workers_without_a_shared_folder_publish_every_study_tier_to_the_store(
    deployment: dict[str, Any],
) -> None:
    stack, s3, root = deployment["stack"], deployment["s3"], deployment["root"]
    studies = []
    for index in range(2):
        files = write_ct_series(root / "landing" / f"s{index}", slices=SLICES, rows=128,
                                columns=128, seed=60 + index)  # fmt: skip
        studies.append(str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID))
    upload_folder(s3, root / "landing", "landing", "in")
    conf = {"landing": "s3://landing/in", "output": "s3://archive/dcm", "tiers": TIERS,
            "settle_seconds": 0}  # fmt: skip
    run_id = trigger_run(stack, conf)
    assert wait_run(stack, run_id) == "success"

    objects = s3.objects("archive", "dcm/")
    keys = [k.removeprefix("dcm/") for k in objects]
    assert {k.split("/")[0] for k in keys} <= {"derived", "quality", "packages", "work"}
    assert not [k for k in keys if k.startswith(("work/publish/", "cache/")) or ".tmp" in k]
    assert s3.uploads("archive") == []
    for study in studies:
        for tier in TIERS:
            assert len([k for k in keys if k.startswith(f"derived/{tier}/{study}/")]) == SLICES
            package = (
                s3.client()
                .get_object(Bucket="archive", Key=f"dcm/packages/{study}/{tier}.zip")["Body"]
                .read()
            )
            with zipfile.ZipFile(io.BytesIO(package)) as zf:
                assert zf.testzip() is None and MANIFEST_NAME in zf.namelist()
    uris = _catalogue(deployment["catalogue"], "SELECT uri FROM packages")
    assert {row[0] for row in uris} == {
        f"s3://archive/dcm/packages/{s}/{t}.zip" for s in studies for t in TIERS
    }
    layers = _catalogue(
        deployment["catalogue"], "SELECT DISTINCT tier, layer FROM lineage WHERE layer IS NOT NULL"
    )
    # every rate tier cut from the layered encode: at its own layer (r50 1, r20 2) or at a
    # ladder layer where a frame fell back to meet the range-based gate
    assert {row[0] for row in layers} == {"j2k-r20", "j2k-r50"}
    assert all(row[1] >= 1 for row in layers)
    for scratch in deployment["scratch"].values():  # nothing published is left on a worker
        assert not [p for p in Path(scratch).rglob("*") if p.suffix in (".dcm", ".zip", ".j2c")]


def _catalogue(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())
    finally:
        engine.dispose()
