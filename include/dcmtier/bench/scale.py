"""The scale benchmark's discovery figures: ``dcmtier discover`` on synthetic archives of many
small studies, first pass, repeat, and after new files land.

Files are made from one 8x8 CT slice written by pydicom, copied with fixed-width UIDs and the
StudyDate substituted in its bytes (a few microseconds a file), so that 100,000 files take
seconds to lay out. Each figure is one ``dcmtier discover --json`` process, timed inside (its
``seconds``) and from outside (the process, Python start-up included).

With ``s3=True`` the archive is uploaded to a bucket of an S3 API server the benchmark starts
on loopback (moto, ``dcmtier.bench.s3server``, a process of its own) and discovery lists and
reads it through ``AWS_ENDPOINT_URL`` like any S3 store: every header read is a GET over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

STUDY, SERIES, SOP = "2.25.1" + "0" * 20, "2.25.2" + "0" * 20, "2.25.3" + "0" * 26
DATE = "20240101"


def template() -> bytes:
    """One small CT file whose UIDs and StudyDate are placeholders of fixed width."""
    from pydicom import dcmread
    from pydicom.uid import UID

    from dcmtier.sample import write_ct_series

    with tempfile.TemporaryDirectory() as folder:
        (path,) = write_ct_series(Path(folder), slices=1, rows=8, columns=8, study_date=DATE)
        ds = dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = STUDY, SERIES, SOP
    ds.file_meta.MediaStorageSOPInstanceUID = UID(SOP)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def lay_out(root: Path, first: int, studies: int, files: int, body: bytes) -> int:
    """Studies ``first`` .. ``first + studies - 1`` of ``files`` files each, under
    ``root/<study number>/``; StudyDates spread over a year. Returns the files written."""
    for s in range(first, first + studies):
        folder = root / f"{s:07d}"
        folder.mkdir(parents=True, exist_ok=True)
        day = (date(2024, 1, 1) + timedelta(days=s % 365)).strftime("%Y%m%d")
        study = body.replace(STUDY.encode(), f"2.25.1{s:020d}".encode())
        study = study.replace(SERIES.encode(), f"2.25.2{s:020d}".encode())
        study = study.replace(DATE.encode(), day.encode())
        for f in range(files):
            sop = f"2.25.3{s:020d}{f:06d}".encode()
            (folder / f"{f:05d}.dcm").write_bytes(study.replace(SOP.encode(), sop))
    return studies * files


BUCKET = "landing"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "dcmtier-bench",
    "AWS_SECRET_ACCESS_KEY": "dcmtier-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 API server in a process of its own on a free loopback port, with one empty
    bucket; yields the environment that points S3 clients (boto3, s3fs) at it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcmtier.bench.s3server"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening"):
            raise RuntimeError(f"the S3 server did not start (exit {proc.poll()})")
        env = {**S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{int(line.split()[1])}"}
        _s3_client(env).create_bucket(Bucket=BUCKET)
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _s3_client(env: dict[str, str]) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip


def upload(folder: Path, env: dict[str, str], prefix: str, names: list[Path]) -> None:
    """PUT each of ``names`` (under ``folder``) to ``s3://landing/<prefix>/<relative path>``,
    16 at a time."""
    client = _s3_client(env)

    def put(path: Path) -> None:
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, names))


def discover(landing: str, catalogue: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """One ``dcmtier discover --json`` process; its output plus the process's wall time."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dcmtier.cli", "discover", landing, "--catalogue", catalogue,
         "--json"],
        capture_output=True, text=True, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"dcmtier discover {landing} failed: {proc.stderr.strip()[-800:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    out["process_s"] = round(time.perf_counter() - started, 3)
    return out


def discovery_case(
    work: Path,
    files: int,
    *,
    per_study: int,
    new_files: int,
    catalogue: Callable[[str], str],
    echo: Callable[[str], None],
    s3: dict[str, str] | None = None,
) -> dict[str, Any]:
    """First pass, repeat, and a pass after ``new_files`` (in new studies) landed; on local
    disk, or, with ``s3`` (the environment of ``s3_server``), under ``s3://landing/<name>``."""
    name = f"landing-{files}"
    landing = work / name
    studies = files // per_study
    made = time.perf_counter()
    lay_out(landing, 0, studies, per_study, template())
    if s3 is not None:
        upload(landing, s3, name, sorted(landing.rglob("*.dcm")))
    where = "uploaded to S3" if s3 is not None else "laid out"
    echo(f"{files} files in {studies} studies {where} in {time.perf_counter() - made:.1f} s")
    url = catalogue(f"scale_{files}{'_s3' if s3 is not None else ''}")
    subprocess.run([sys.executable, "-m", "dcmtier.cli", "db", "upgrade", "--catalogue", url],
                   check=True, capture_output=True)  # fmt: skip
    case: dict[str, Any] = {"files": files, "studies": studies, "catalogue": url.split(":")[0],
                            "landing": "s3 (moto server, loopback)" if s3 is not None
                            else "local disk"}  # fmt: skip
    uri = f"s3://{BUCKET}/{name}" if s3 is not None else str(landing)
    case["first"] = discover(uri, url, s3)
    case["repeat"] = discover(uri, url, s3)
    case["new_files"] = lay_out(landing, studies, 1, new_files, template())  # one new study
    if s3 is not None:
        upload(landing, s3, name, sorted((landing / f"{studies:07d}").glob("*.dcm")))
    case["new"] = discover(uri, url, s3)
    case["repeat_share"] = round(case["repeat"]["seconds"] / case["first"]["seconds"], 4)
    case["new_vs_repeat"] = round(case["new"]["seconds"] / case["repeat"]["seconds"], 3)
    echo(
        f"{files} files: first {case['first']['seconds']:.2f} s "
        f"({case['first']['headers_read']} headers), repeat {case['repeat']['seconds']:.2f} s "
        f"({case['repeat']['headers_read']}), +{case['new_files']} new "
        f"{case['new']['seconds']:.2f} s ({case['new']['headers_read']})"
    )
    return case


def run_discovery(
    work: Path,
    sizes: list[int],
    *,
    per_study: int,
    new_share: float,
    new_files: int | None,
    server: str | None,
    echo: Callable[[str], None],
    s3: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``discovery_case`` per size, on fresh SQLite files or fresh databases on ``server``
    (dropped again at the end); the landing area on S3 with ``s3``."""
    created: list[str] = []

    def catalogue(name: str) -> str:
        if server is None:
            return f"sqlite:///{work / name}.db"
        from sqlalchemy.engine import make_url

        _on_server(server, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    cases = []
    try:
        for size in sizes:
            added = new_files if new_files is not None else max(1, round(size * new_share))
            case = discovery_case(
                work, size, per_study=per_study, new_files=added, catalogue=catalogue,
                echo=echo, s3=s3,
            )  # fmt: skip
            cases.append(case)
    finally:
        if server is not None and created:
            _on_server(server, *(f'DROP DATABASE IF EXISTS "{name}"' for name in created))
    return cases


def _on_server(server: str, *statements: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(make_url(server), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()
