"""``dcmtier process`` with landing and output both on S3: an S3 API server on loopback
(``tests/s3server.py``, moto in a process of its own) reached through ``AWS_ENDPOINT_URL``.

The commands run as processes of their own, configured only by the environment, as an operator
would run them.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pydicom import dcmread

from dcmtier.packaging.package import MANIFEST_NAME
from dcmtier.sample import write_ct_series
from tests.objstore import S3Process, s3_server, upload_folder

DCMTIER = [sys.executable, "-m", "dcmtier.cli"]
TIERS = ("j2k-lossless", "j2k-r20")
TOP_LEVEL = {"derived", "quality", "packages", "cache", "quarantine", "work"}
PLANTED = "DOE_JANE"  # a patient's name in landing file names: never in an object key
SLICES = 6
# Processes against a server process, about 2 minutes of the unit tests' time on 2 cores: run
# by `make test`, left out of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Process]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def s3_landing(s3: S3Process, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("landing")
    paths = write_ct_series(folder, slices=SLICES, rows=128, columns=128, seed=16)
    study_uid = str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    for path in paths:
        path.rename(folder / f"{PLANTED}_{path.name}")
    s3.client().create_bucket(Bucket="landing")
    upload_folder(s3, folder, "landing", "ward7/study1")
    return {"study_uid": study_uid, "bytes": sum(p.stat().st_size for p in folder.iterdir())}


def run(s3: S3Process, *argv: str, scratch: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **s3.env, "DCMTIER_SCRATCH": str(scratch)}
    env.pop("DCMTIER_CATALOGUE_URL", None)
    return subprocess.run(
        [*DCMTIER, *argv], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def process(s3: S3Process, catalogue: str, scratch: Path) -> subprocess.CompletedProcess[str]:
    tiers = [a for t in TIERS for a in ("--tier", t)]
    return run(
        s3, "process", "s3://landing/ward7/study1", "--out", "s3://archive/dcm", *tiers,
        "--catalogue", catalogue, "--jobs", "1", scratch=scratch,
    )  # fmt: skip


def test_process_from_s3_to_s3_publishes_every_tier_whole_and_a_rerun_keeps_the_etags(
    s3: S3Process, s3_landing: dict[str, Any], tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket="archive")
    db = tmp_path / "catalogue.db"
    catalogue = f"sqlite:///{db}"
    assert run(s3, "db", "upgrade", "--catalogue", catalogue, scratch=tmp_path).returncode == 0

    first = process(s3, catalogue, tmp_path / "scratch")
    assert first.returncode == 0, first.stderr[-2000:]
    objects = s3.objects("archive", "dcm/")
    keys = [k.removeprefix("dcm/") for k in objects]
    assert {k.split("/")[0] for k in keys} <= TOP_LEVEL
    assert not [k for k in keys if ".tmp" in k or k.startswith("work/publish")]
    assert not [k for k in keys if PLANTED in k]
    assert PLANTED not in first.stdout + first.stderr
    assert not list((tmp_path / "scratch").rglob("*.dcm"))  # nothing staged or derived left
    assert not list((tmp_path / "scratch").glob("dcmtier-scratch/*/staging/*"))  # no run folder
    assert s3.uploads("archive") == []

    study = s3_landing["study_uid"]
    rows = _savings(db)
    for tier in TIERS:
        derived = {k: o for k, o in objects.items() if k.startswith(f"dcm/derived/{tier}/{study}/")}
        assert len(derived) == SLICES
        (part,) = [k for k in keys if k.startswith(f"quality/tier={tier}/study={study}/")]
        table = pq.read_table(io.BytesIO(_get(s3, f"dcm/{part}")))
        assert table.num_rows == SLICES and set(table.column("tier").to_pylist()) == {tier}
        package = f"dcm/packages/{study}/{tier}.zip"
        with zipfile.ZipFile(io.BytesIO(_get(s3, package))) as zf:
            assert zf.testzip() is None
            names = zf.namelist()
        assert MANIFEST_NAME in names and len(names) == SLICES + 1
        assert rows[tier]["compressed_bytes"] == sum(o["Size"] for o in derived.values())
        assert rows[tier]["zip_bytes"] == objects[package]["Size"]
        assert rows[tier]["original_bytes"] == s3_landing["bytes"]
    assert _catalogued_package_uris(db) == {
        f"s3://archive/dcm/packages/{study}/{tier}.zip" for tier in TIERS
    }

    etags = {k: o["ETag"] for k, o in objects.items() if k.startswith("dcm/packages/")}
    second = process(s3, catalogue, tmp_path / "other-scratch")  # another host, say
    assert second.returncode == 0, second.stderr[-2000:]
    again = s3.objects("archive", "dcm/")
    assert {k: o["ETag"] for k, o in again.items() if k.startswith("dcm/packages/")} == etags
    assert set(again) == set(objects)


def test_an_output_on_a_store_without_a_catalogue_url_is_refused_in_one_line(
    s3: S3Process, s3_landing: dict[str, Any], tmp_path: Path
) -> None:
    result = run(
        s3, "process", "s3://landing/ward7/study1", "--out", "s3://archive/x", scratch=tmp_path
    )
    assert result.returncode == 2
    assert "needs a catalogue URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_outputs_the_gate_now_rejects_are_deleted_from_the_store_not_left_as_if_kept(
    s3: S3Process, tmp_path: Path
) -> None:
    """A noisy CT, cut from one layered encode: j2k-r3 passes its gate, j2k-r10 keeps some of
    its slices (3 of 6 measured with the gates against each frame's range), j2k-r20 none. A
    run with ``keep`` publishes every output; the same run with ``reject`` leaves on the store
    exactly what the catalogue names: no rejected instance, no package for j2k-r20, the
    untouched tier's objects as they were."""
    folder = tmp_path / "noisy"
    paths = write_ct_series(folder, slices=SLICES, rows=128, columns=128, seed=16, noise_hu=15.0)
    study = str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    s3.client().create_bucket(Bucket="gated")
    upload_folder(s3, folder, "gated", "in")
    db = tmp_path / "catalogue.db"
    catalogue = f"sqlite:///{db}"
    assert run(s3, "db", "upgrade", "--catalogue", catalogue, scratch=tmp_path).returncode == 0
    tiers = ("j2k-r3", "j2k-r10", "j2k-r20")
    argv = ["process", "s3://gated/in", "--out", "s3://gated/out", "--catalogue", catalogue,
            "--jobs", "1", "--json", *(a for t in tiers for a in ("--tier", t))]  # fmt: skip

    kept = run(s3, *argv, "--on-gate-failure", "keep", scratch=tmp_path / "scratch")
    assert kept.returncode == 0, kept.stderr[-2000:]
    for tier in tiers:
        assert len(s3.objects("gated", f"out/derived/{tier}/{study}/")) == SLICES
        assert f"out/packages/{study}/{tier}.zip" in s3.objects("gated", "out/packages/")
    before = s3.objects("gated", f"out/derived/j2k-r3/{study}/")

    rejected = run(s3, *argv, "--on-gate-failure", "reject", scratch=tmp_path / "scratch")
    assert rejected.returncode == 0, rejected.stderr[-2000:]
    statuses = {r["tier"]: r for r in map(json.loads, rejected.stdout.splitlines())}
    assert statuses["j2k-r3"]["counts"] == {"ok": SLICES}
    r10 = statuses["j2k-r10"]["counts"]
    assert 0 < r10["ok"] < SLICES and r10["ok"] + r10["rejected"] == SLICES
    assert statuses["j2k-r20"]["status"] == "rejected"
    objects = s3.objects("gated", "out/")
    with sqlite3.connect(db) as connection:
        named = {
            (tier, uri.removeprefix("s3://gated/"))
            for tier, uri in connection.execute("SELECT tier, output_uri FROM derived_instances")
        }
        packages = {row[0] for row in connection.execute("SELECT uri FROM packages")}
    for tier in tiers:
        on_store = {k for k in objects if k.startswith(f"out/derived/{tier}/{study}/")}
        assert on_store == {key for t, key in named if t == tier}
    assert len([k for k in objects if k.startswith("out/derived/j2k-r10/")]) == r10["ok"]
    assert not [k for k in objects if k.startswith("out/derived/j2k-r20/")]
    assert {k: o["ETag"] for k, o in before.items()} == {
        k: o["ETag"] for k, o in objects.items() if k.startswith("out/derived/j2k-r3/")
    }
    assert f"out/packages/{study}/j2k-r20.zip" not in objects
    assert packages == {f"s3://gated/out/packages/{study}/{t}.zip" for t in ("j2k-r3", "j2k-r10")}
    with zipfile.ZipFile(io.BytesIO(_get(s3, f"out/packages/{study}/j2k-r10.zip", "gated"))) as zf:
        assert len([n for n in zf.namelist() if n != MANIFEST_NAME]) == r10["ok"]
    assert not [k for k in objects if k.startswith("out/work/publish/")]


def test_compress_writes_each_output_as_one_object_under_an_output_url(
    s3: S3Process, s3_landing: dict[str, Any], tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket="loose")
    argv = ["compress", "s3://landing/ward7/study1", "--tier", "j2k-lossless", "--tier",
            "j2k-r20", "--out", "s3://loose/files", "--json", "--jobs", "1"]  # fmt: skip
    result = run(s3, *argv, scratch=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 * SLICES and {line["status"] for line in lines} == {"ok"}
    objects = s3.objects("loose")
    assert {f"s3://loose/{k}" for k in objects} == {line["output"] for line in lines}
    for tier in ("j2k-lossless", "j2k-r20"):
        assert (
            len([k for k in objects if k.startswith(f"files/{tier}/{s3_landing['study_uid']}/")])
            == SLICES
        )
    for key in objects:
        body = s3.client().get_object(Bucket="loose", Key=key)["Body"].read()
        assert dcmread(io.BytesIO(body)).file_meta.TransferSyntaxUID.startswith(
            "1.2.840.10008.1.2.4.9"
        )
    assert PLANTED not in result.stdout + "".join(objects)


def _get(s3: S3Process, key: str, bucket: str = "archive") -> bytes:
    return bytes(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def _savings(db: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        return {r["tier"]: dict(r) for r in connection.execute("SELECT * FROM savings_by_tier")}


def _catalogued_package_uris(db: Path) -> set[str]:
    with sqlite3.connect(db) as connection:
        return {row[0] for row in connection.execute("SELECT uri FROM packages")}


def test_compress_reads_its_sources_from_s3_and_names_them_by_key_unless_asked(
    s3: S3Process, s3_landing: dict[str, Any], tmp_path: Path
) -> None:
    argv = ["compress", "s3://landing/ward7/study1", "--tier", "j2k-r20", "--out",
            str(tmp_path / "out"), "--json", "--jobs", "1"]  # fmt: skip
    result = run(s3, *argv, scratch=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["ok"] * SLICES
    assert PLANTED not in result.stdout
    assert len(list((tmp_path / "out" / "j2k-r20").rglob("*.dcm"))) == SLICES
    shown = run(s3, *argv, "--show-paths", scratch=tmp_path)
    paths = {json.loads(line)["path"] for line in shown.stdout.splitlines()}
    assert all(p.startswith(f"s3://landing/ward7/study1/{PLANTED}_") for p in paths)
