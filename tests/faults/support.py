"""Helpers of the fault tests: start, stop at a checkpoint, kill, and check what is left.

Kept apart from ``conftest.py`` so that a DAG run started in a subprocess imports them
without the fixtures (which would give it an Airflow home of its own).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from dcmtier.catalogue import Catalogue
from dcmtier.packaging.package import verify_package

TIERS = ("j2k-lossless", "htj2k-lossless")  # lossless: 64x64 slices pass every gate
SLICES = {"a": 3, "b": 2}


def cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dcmtier.cli", *map(str, args)]


def process_args(landing: Path, out: Path, catalogue: str | None) -> list[str]:
    tiers = [a for t in TIERS for a in ("--tier", t)]
    where = ["--catalogue", catalogue] if catalogue else []
    return cli("process", landing, "--out", out, *tiers, *where, "--jobs", "1")


def start(args: Sequence[str], *, pause_at: str | None = None, marker: Path | None = None,
          **env: str) -> subprocess.Popen[str]:  # fmt: skip
    environment = {**os.environ, **env}
    if pause_at is not None:
        environment["DCMTIER_TEST_PAUSE_AT"] = f"{pause_at}:{marker}"
    return subprocess.Popen(
        list(args), env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(marker: Path, process: subprocess.Popen[str], timeout: float = 120) -> None:
    """Until the process has stopped at its checkpoint (the marker exists)."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"exited {process.returncode} before the checkpoint:\n{out}\n{err}")
        assert time.monotonic() < deadline, "the checkpoint was never reached"
        time.sleep(0.05)


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)


def temps(out: Path) -> list[Path]:
    return sorted(out.rglob("*.tmp"))


def jobs(url: str) -> list[dict[str, Any]]:
    catalogue = Catalogue.connect(url)
    try:
        with catalogue.engine.connect() as connection:
            query = text("SELECT id, study_uid, tier, status, error, run_id FROM jobs ORDER BY id")
            return [dict(r) for r in connection.execute(query).mappings()]
    finally:
        catalogue.close()


def assert_each_pair_done_once(url: str, out: Path, landing: Path) -> None:
    """No job left running, no temporary file, one ``ok`` job per study x tier, and each
    package holds every instance of its study."""
    rows = jobs(url)
    assert not [r for r in rows if r["status"] == "running"], rows
    assert temps(out) == []
    ok: dict[tuple[str, str], int] = {}
    for r in rows:
        if r["status"] == "ok":
            ok[(r["study_uid"], r["tier"])] = ok.get((r["study_uid"], r["tier"]), 0) + 1
    studies = {p.name for p in (out / "packages").iterdir()}
    assert len(studies) == len(SLICES)
    assert ok == {(s, t): 1 for s in studies for t in TIERS}, rows
    members = sorted(
        verify_package(out / "packages" / s / f"{t}.zip").member_count
        for s in studies
        for t in TIERS
    )
    assert members == sorted(n for n in SLICES.values() for _ in TIERS)


def run_dag(landing: Path, out: Path, **conf: Any) -> Any:
    """The DAG's next run, with ``dag.test()`` in this process (reprocess none)."""
    from airflow.dag_processing.dagbag import DagBag

    dags = Path(__file__).resolve().parents[2] / "dags"
    dag = DagBag(dag_folder=str(dags)).dags["dicom_archive_compression"]
    run_conf = {"landing": str(landing), "output": str(out), "tiers": list(TIERS),
                "settle_seconds": 0, "strategy": "per_tier", **conf}  # fmt: skip
    return dag.test(run_conf=run_conf)
