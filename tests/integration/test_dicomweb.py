"""A DICOMweb archive as landing area and as publishing target: two real Orthanc servers
(``tests/orthanc.py``) on loopback with authentication on, reached by the ``dcmtier`` command
in processes of their own, configured by the environment as an operator would.

Two studies, 10 instances (``tests.orthanc.two_studies``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from sqlalchemy import create_engine, text

from dcmtier.sample import write_ct_series
from dcmtier.ui.queries import study_tier
from tests.orthanc import Orthanc, credentials_env, running_orthanc, two_studies
from tests.support import gdcm_frames

DCMTIER = [sys.executable, "-m", "dcmtier.cli"]
J2K_LOSSY = "1.2.840.10008.1.2.4.91"  # JPEG 2000 (lossy allowed)


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return two_studies(tmp_path_factory.mktemp("uploads"))


@pytest.fixture(scope="module")
def source(uploads: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with running_orthanc(tmp_path_factory.mktemp("pacs-source")) as server:
        server.upload(*uploads)
        yield server


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with running_orthanc(tmp_path_factory.mktemp("pacs-target")) as server:
        yield server


def dcmtier(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **credentials_env(), **(env or {})}
    environment.pop("DCMTIER_CATALOGUE_URL", None)
    return subprocess.run(
        [*DCMTIER, *argv], env=environment, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def processed(source: Orthanc, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    result = dcmtier(
        "process", source.url, "--tier", "j2k-lossless", "--tier", "j2k-r20", "--out", str(out),
        "--jobs", "1", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_discovery_reads_the_metadata_of_each_instance_once(
    source: Orthanc, tmp_path: Path
) -> None:
    argv = ("discover", source.url, "--out", str(tmp_path), "--json")
    first, second = last_json(dcmtier(*argv)), last_json(dcmtier(*argv))
    assert (first["studies"], first["files_listed"], first["headers_read"]) == (2, 10, 10)
    assert (first["files_new"], first["unreadable"], first["files_gone"]) == (10, 0, 0)
    assert (second["studies"], second["files_listed"], second["headers_read"]) == (2, 10, 0)
    with sqlite3.connect(tmp_path / "catalogue.db") as db:
        rows = db.execute("SELECT uri, sop_uid, file_key, study_date FROM landing_files").fetchall()
    assert len(rows) == 10
    assert all(
        uri.startswith(f"{source.url}/studies/") and uri.endswith(sop) for uri, sop, _, _ in rows
    )
    assert all(key == sop for _, sop, key, _ in rows)


def test_discovery_finds_a_new_instance_and_one_gone(
    source: Orthanc, uploads: list[Path], tmp_path: Path
) -> None:
    argv = ("discover", source.url, "--out", str(tmp_path), "--json")
    last_json(dcmtier(*argv))
    extra = tmp_path / "extra"
    added = write_ct_series(extra, slices=1, rows=32, columns=32, seed=31)
    source.upload(*added)
    try:
        again = last_json(dcmtier(*argv))
    finally:
        sop = dcmread(added[0], stop_before_pixels=True).SOPInstanceUID
        found = source.rest.post("/tools/lookup", content=str(sop)).json()
        source.rest.delete(f"/instances/{found[0]['ID']}").raise_for_status()
    assert (again["studies"], again["files_new"], again["headers_read"]) == (3, 1, 1)
    after = last_json(dcmtier(*argv))
    assert (after["studies"], after["files_gone"], after["headers_read"]) == (2, 1, 0)


def test_process_writes_lossless_outputs_bit_exact_to_the_uploaded_pixels(
    processed: Path, uploads: list[Path], tmp_path: Path
) -> None:
    outputs = {p.stem: p for p in (processed / "derived" / "j2k-lossless").rglob("*.dcm")}
    assert len(outputs) == 10
    for upload in uploads:
        original = dcmread(upload)
        decoded = gdcm_frames(outputs[str(original.SOPInstanceUID)], tmp_path)
        assert np.array_equal(decoded[0], original.pixel_array), upload.name
    assert len(list((processed / "derived" / "j2k-r20").rglob("*.dcm"))) == 10
    assert not (processed / "staging").exists() or not any((processed / "staging").rglob("*.dcm"))


def test_publish_stores_a_tier_once_and_records_it(processed: Path, target: Orthanc) -> None:
    argv = ("publish", str(processed), "--tier", "j2k-r20", "--to", target.url, "--json")
    first = last_json(dcmtier(*argv))
    assert (first["instances"], first["sent"], first["already_there"], first["failed"]) == (
        10,
        10,
        0,
        0,
    )
    held = target.transfer_syntaxes()
    assert len(held) == 10 and set(held.values()) == {J2K_LOSSY}
    second = last_json(dcmtier(*argv))
    assert (second["sent"], second["already_there"], second["requests"]) == (0, 10, 0)
    assert len(target.transfer_syntaxes()) == 10
    with sqlite3.connect(processed / "catalogue.db") as db:
        rows = db.execute(
            "SELECT p.derived_sop_uid, p.destination, p.sent FROM publications p "
            "JOIN derived_instances d ON d.derived_sop_uid = p.derived_sop_uid AND d.tier = p.tier"
        ).fetchall()
    assert sorted(held) == sorted(r[0] for r in rows)
    assert {(r[1], r[2]) for r in rows} == {(target.url, 1)}
    engine = create_engine(f"sqlite:///{processed / 'catalogue.db'}")
    with engine.connect() as connection:
        studies = [str(r[0]) for r in connection.execute(text("SELECT study_uid FROM studies"))]
        pages = [study_tier(connection, study, "j2k-r20").published for study in studies]
    engine.dispose()
    assert sorted((p.destination, p.instances, p.sent) for (p,) in pages) == [
        (target.url, 2 + 2, 2 + 2),  # the second study: two synthetic slices, CT and MR small
        (target.url, 6, 6),
    ]


def test_a_stopped_server_is_one_line_naming_it_and_the_index_keeps_its_rows(
    uploads: list[Path], tmp_path: Path
) -> None:
    with running_orthanc(tmp_path / "pacs") as server:
        server.upload(*uploads[:3])
        argv = ("discover", server.url, "--out", str(tmp_path), "--json")
        assert last_json(dcmtier(*argv))["headers_read"] == 3
    for command in (
        argv,
        ("process", server.url, "--tier", "j2k-r20", "--out", str(tmp_path / "o")),
    ):
        result = dcmtier(*command)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert f"{server.url}/studies" in lines[0] and "ConnectError" in lines[0], lines[0]
        assert "password" not in result.stderr.lower()
    with sqlite3.connect(tmp_path / "catalogue.db") as db:
        assert db.execute(
            "SELECT COUNT(*) FROM landing_files WHERE gone_at IS NULL"
        ).fetchone() == (3,)


def test_credentials_are_asked_for_and_never_printed(source: Orthanc, tmp_path: Path) -> None:
    result = dcmtier(
        "discover", source.url, "--out", str(tmp_path),
        env={"DCMTIER_DICOMWEB_USER": "dcmtier", "DCMTIER_DICOMWEB_PASSWORD": "wrong-secret"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr and "wrong-secret" not in result.stderr


def test_a_pass_by_study_date_searches_only_those_days_and_marks_no_other_study_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date

    from dcmtier.catalogue import Catalogue
    from dcmtier.discovery.index import index_landing

    for name, value in credentials_env().items():
        monkeypatch.setenv(name, value)
    january = write_ct_series(tmp_path / "jan", slices=2, rows=32, columns=32, seed=32,
                              study_date="20240115")  # fmt: skip
    march = write_ct_series(tmp_path / "mar", slices=3, rows=32, columns=32, seed=33,
                            study_date="20240301")  # fmt: skip
    url = f"sqlite:///{tmp_path}/catalogue.db"
    Catalogue.upgrade(url)
    catalogue = Catalogue.connect(url)
    try:
        with running_orthanc(tmp_path / "pacs") as server:
            server.upload(*january, *march)
            day = (date(2024, 3, 1), date(2024, 3, 1))
            in_march = index_landing(server.url, catalogue, dates=day)
            everything = index_landing(server.url, catalogue)
            again_march = index_landing(server.url, catalogue, dates=day)
    finally:
        catalogue.close()
    assert (in_march.files_listed, in_march.headers_read) == (3, 3)
    assert (everything.files_listed, everything.headers_read, everything.files_gone) == (5, 2, 0)
    assert (again_march.files_listed, again_march.headers_read, again_march.files_gone) == (3, 0, 0)
