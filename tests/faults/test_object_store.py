"""The S3 server goes down in the middle of a package's multipart upload: nothing of that
study x tier is visible under its final keys, and the retry publishes everything and leaves no
staged object and no unfinished upload behind."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from pydicom import dcmread

from dcmtier.sample import write_ct_series
from tests.objstore import s3_server, upload_folder

DCMTIER = [sys.executable, "-m", "dcmtier.cli"]
FINAL = ("derived/", "quality/", "packages/", "quarantine/")


def test_an_outage_mid_package_leaves_nothing_visible_and_the_retry_completes(
    tmp_path: Path,
) -> None:
    paths = write_ct_series(tmp_path / "landing", slices=6, rows=128, columns=128, seed=16)
    study = str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    with s3_server("--fail-on-part", "2") as s3:
        client = s3.client()
        client.create_bucket(Bucket="landing")
        client.create_bucket(Bucket="archive")
        upload_folder(s3, tmp_path / "landing", "landing", "in")
        env = {**os.environ, **s3.env, "DCMTIER_SCRATCH": str(tmp_path / "scratch")}
        catalogue = f"sqlite:///{tmp_path / 'catalogue.db'}"
        argv = [
            *DCMTIER, "process", "s3://landing/in", "--out", "s3://archive/dcm",
            "--tier", "j2k-lossless", "--catalogue", catalogue, "--jobs", "1",
        ]  # fmt: skip
        upgrade = [*DCMTIER, "db", "upgrade", "--catalogue", catalogue]
        assert subprocess.run(upgrade, env=env, capture_output=True, check=False).returncode == 0

        failed = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        s3.wait_stopped()  # the server really went down, during part 2 of the package
        assert failed.returncode == 1, failed.stderr[-2000:]
        (error,) = [line for line in failed.stderr.splitlines() if line.startswith("dcmtier:")]
        assert "upload work/publish/" in error and "j2k-lossless.zip" in error

        s3.resume()
        left = s3.objects("archive", "dcm/")
        assert not [k for k in left if k.removeprefix("dcm/").startswith(FINAL)]
        assert [k for k in left if k.startswith("dcm/work/publish/")]  # staged, never committed
        assert _count(tmp_path / "catalogue.db", "packages") == 0
        assert _count(tmp_path / "catalogue.db", "derived_instances") == 0

        retried = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert retried.returncode == 0, retried.stderr[-2000:]
        done = s3.objects("archive", "dcm/")
        assert not [k for k in done if k.startswith("dcm/work/publish/")]
        assert s3.uploads("archive") == []
        assert len([k for k in done if k.startswith(f"dcm/derived/j2k-lossless/{study}/")]) == 6
        assert f"dcm/packages/{study}/j2k-lossless.zip" in done
        assert _count(tmp_path / "catalogue.db", "packages") == 1


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
