"""Operators' and data teams' workflows on real Airflow processes.

api-server, scheduler, dag-processor and two CeleryExecutor workers (Redis broker) on a fresh
PostgreSQL metadata database, the catalogue in its own fresh PostgreSQL database; everything is
driven through the REST API (and the backfill CLI), as an operator would.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dcmtier.catalogue import Catalogue
from dcmtier.orchestration.assets import PACKAGES_ASSET
from dcmtier.sample import write_ct_series
from tests.faults.planted import leaks_in_text, leaks_under, plant_landing, postgres_leaks
from tests.integration.airflow_stack import (
    DAG_ID,
    RUN_TIMEOUT,
    AirflowStack,
    deployment_databases,
    query,
    trigger_run,
    wait_for,
    wait_run,
)

TIERS = ["j2k-lossless", "j2k-r20"]

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("deployment")
    with deployment_databases("dcmtier_it") as (metadata_url, catalogue_url):
        Catalogue.upgrade(catalogue_url)
        landing, output = root / "landing", root / "output"
        landing.mkdir()
        stack = AirflowStack.configure(
            root / "airflow",
            metadata_url,
            redis_db=int(os.environ.get("DCMTIER_TEST_REDIS_DB", "11")),  # one per concurrent suite
            extra={
                "AIRFLOW_CONN_DCMTIER_CATALOGUE": catalogue_url,
                "DCMTIER_LANDING": str(landing),
                "DCMTIER_DATA_DIR": str(output),
                "DCMTIER_TASK_RETRIES": "0",
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                    {"type": "file", "log_file_path": str(root / "lineage.jsonl"), "append": True}
                ),
            },
        )
        try:
            stack.start()
            yield {"stack": stack, "landing": landing, "output": output, "catalogue": catalogue_url,
                   "lineage": root / "lineage.jsonl", "metadata": metadata_url}  # fmt: skip
        finally:
            stack.stop()


def _trigger(stack: AirflowStack, landing: Path, **conf: Any) -> str:
    return trigger_run(stack, {"landing": str(landing), "tiers": TIERS, "settle_seconds": 0,
                               **conf})  # fmt: skip


def _task_instances(stack: AirflowStack, run_id: str) -> list[dict[str, Any]]:
    data = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=500")
    return list(data["task_instances"])


def _xcom(stack: AirflowStack, run_id: str, task_id: str, key: str = "return_value") -> Any:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
    return stack.api("GET", path)["value"]


def _plan_file(output: Path, run_id: str) -> Path:
    from dcmtier.discovery.plan import PLAN_FILE, safe_name

    return output / "work" / safe_name(run_id) / PLAN_FILE


def _study(
    landing: Path,
    name: str,
    seed: int,
    *,
    study_date: str = "20240115",
    slices: int = 3,
    size: int = 128,
) -> str:
    files = write_ct_series(landing / name, slices=slices, rows=size, columns=size, seed=seed,
                            study_date=study_date)  # fmt: skip
    from pydicom import dcmread

    return str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def test_1_a_run_completes_every_study_and_lists_the_corrupt_file(
    deployment: dict[str, Any],
) -> None:
    stack, landing = deployment["stack"], deployment["landing"] / "run1"
    studies = [_study(landing, f"s{i}", seed=100 + i) for i in range(3)]
    broken = landing / "s0" / "CT0002.dcm"
    broken.write_bytes(broken.read_bytes()[:-3000])
    run_id = _trigger(stack, landing)
    assert wait_run(stack, run_id) == "success"
    compress = [ti for ti in _task_instances(stack, run_id) if ti["task_id"] == "compress"]
    assert len(compress) == len(TIERS)  # three small studies: one work unit
    assert {ti["state"] for ti in compress} == {"success"}
    # no large_instance_mb: the large units' tasks expand to nothing, skipped by the scheduler
    large = sorted((ti["task_id"], ti["map_index"], ti["state"])
                   for ti in _task_instances(stack, run_id)
                   if ti["task_id"] in ("encode_large", "compress_large"))  # fmt: skip
    assert large == [("compress_large", -1, "skipped"), ("encode_large", -1, "skipped")]
    # the grid label names the unit, its study count, the tier, and the one partial study
    labels = sorted(str(ti["rendered_map_index"]) for ti in compress)
    assert labels == [f"u0000 · 3 studies · {tier} · 1 partial" for tier in TIERS]
    failures = query(
        deployment["catalogue"],
        "SELECT tier, sop_uid, reason FROM failures WHERE study_uid = :s",
        s=studies[0],
    )
    assert {row[0] for row in failures} == set(TIERS)
    assert all(
        row[1] and row[2].startswith(f"{row[1]}: pixel data cannot be decoded") for row in failures
    ), failures
    quarantined = list((deployment["output"] / "quarantine" / studies[0]).glob("*.reason.json"))
    assert len(quarantined) == 1


def test_1b_each_mapped_instance_reports_its_own_datasets_and_the_downstream_dag_lists_them(
    deployment: dict[str, Any],
) -> None:
    """On real workers (one process per task instance) no instance reports another's datasets;
    the example DAG scheduled on ``dcmtier_packages`` receives events naming study and tier."""
    stack, landing = deployment["stack"], deployment["landing"] / "run1b"
    studies = {_study(landing, f"s{i}", seed=150 + i) for i in range(2)}
    run_id = _trigger(stack, landing)
    assert wait_run(stack, run_id) == "success"
    events = [json.loads(line) for line in deployment["lineage"].read_text().splitlines()]
    mine = [
        e for e in events
        if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{DAG_ID}.compress"
        and e["inputs"] and e["inputs"][0]["name"].removeprefix("studies/") in studies
    ]  # fmt: skip
    assert len(mine) == len(TIERS)  # one unit of both studies, one event a tier
    packaged = set()
    for event in mine:
        inputs = {i["name"].removeprefix("studies/") for i in event["inputs"]}
        assert inputs == studies  # the unit's studies, none of another instance's
        names = [o["name"] for o in event["outputs"]]
        packaged |= {n for n in names if n.startswith("packages/")}
        assert sum(n.startswith("quality/") for n in names) == len(studies), names
        assert all(any(s in n for s in studies) for n in names)
        assert str(landing.name) not in json.dumps(event["outputs"])
    assert packaged == {f"packages/{s}/{t}.zip" for s in studies for t in TIERS}

    # Every compress instance's dcmtier_packages event names its unit and tier and the list of
    # its study x tier packages with their sha256: what a downstream DAG reads (asset events
    # as the REST API lists them).
    query = f"/assets/events?source_dag_id={DAG_ID}&source_run_id={quote(run_id)}&limit=100"
    units = [e["extra"] or {} for e in stack.api("GET", query)["asset_events"]
             if e["name"] == PACKAGES_ASSET[0]]  # fmt: skip
    assert sorted((u["unit"], u["tier"], u["studies"]) for u in units) == [
        ("u0000", t, 2) for t in sorted(TIERS)
    ]
    extras = [c for u in units for c in json.loads(Path(u["changes"]).read_text())["changes"]]
    wanted = {(s, t) for s in studies for t in TIERS}
    assert {(x.get("study_uid"), x.get("tier")) for x in extras} == wanted
    assert all(x["package_sha256"] and x["status"] == "ok" for x in extras)

    # The example consumer runs on them and lists what it was given. Airflow 3.3.2 gives an
    # asset-triggered run the events of a time window (scheduler_job_runner, consumed events
    # between the previous run's run_after and this one's), so an event committed after a later
    # one's window closed reaches no run (apache/airflow#56749, fixed by #70972): under load a
    # consumer run may miss one. What it lists must be events of this run, each whole.
    def consumer_changes() -> list[dict[str, Any]] | None:
        runs = stack.api("GET", "/dags/dcmtier_packages_changed/dagRuns?limit=50")["dag_runs"]
        seen: list[dict[str, Any]] = []
        for run in runs:
            if run["state"] != "success":
                continue
            path = (f"/dags/dcmtier_packages_changed/dagRuns/{run['dag_run_id']}"
                    "/taskInstances/list_changes/xcomEntries/return_value")  # fmt: skip
            seen += stack.api("GET", path)["value"]
        return [c for c in seen if c["study_uid"] in studies] or None

    try:
        changes = wait_for(consumer_changes, timeout=RUN_TIMEOUT, what="the consumer", every=5)
    except TimeoutError as exc:
        runs = stack.api("GET", "/dags/dcmtier_packages_changed/dagRuns?limit=50")["dag_runs"]
        seen = [(r["dag_run_id"], r["state"]) for r in runs]
        log = stack.log_tail("scheduler", 40)
        raise AssertionError(f"{exc}; its runs: {seen}\n{log}") from None
    assert all(change in extras for change in changes)


def test_2_an_operator_clears_one_failed_study_tier_and_its_retry_leaves_one_result(
    deployment: dict[str, Any],
) -> None:
    stack, output = deployment["stack"], deployment["output"]
    landing = deployment["landing"] / "run2"
    study = _study(landing, "only", seed=200)
    blocker = output / "derived" / "j2k-r20" / study  # a file where a folder must go
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("storage fault")
    run_id = _trigger(stack, landing)
    assert wait_run(stack, run_id) == "failed"
    states = {
        (ti["task_id"], str(ti["rendered_map_index"])): ti for ti in _task_instances(stack, run_id)
    }
    failed = [ti for ti in states.values() if ti["state"] == "failed"]
    # only the blocked study x tier failed, and the summary says so (the run shows failed)
    assert sorted((ti["task_id"], ti["rendered_map_index"].endswith("j2k-r20")
                   if ti["rendered_map_index"] else None) for ti in failed) == [
        ("compress", True), ("summary", None)]  # fmt: skip
    failed = [ti for ti in failed if ti["task_id"] == "compress"]
    blocker.unlink()  # the operator repairs the storage
    body = {"dry_run": False, "dag_run_id": run_id,
            "task_ids": [["compress", failed[0]["map_index"]]], "only_failed": True,
            "reset_dag_runs": True, "include_downstream": True}  # fmt: skip
    stack.api("POST", f"/dags/{DAG_ID}/clearTaskInstances", json=body)
    assert wait_run(stack, run_id) == "success"
    rows = query(deployment["catalogue"],
                      "SELECT count(*), count(DISTINCT derived_sop_uid) FROM lineage "
                      "WHERE tier = 'j2k-r20' AND source_sop_uid IN "
                      "(SELECT source_sop_uid FROM lineage WHERE run_id = :r)",
                      r=run_id)  # fmt: skip
    assert rows == [(3, 3)]  # three instances, one derived each: the retry replaced nothing twice
    packages = list((output / "packages" / study).glob("*.zip"))
    assert sorted(p.name for p in packages) == sorted(f"{t}.zip" for t in TIERS)


def test_3_a_capped_study_date_backfill_leaves_no_study_behind_and_does_no_pair_twice(
    deployment: dict[str, Any],
) -> None:
    """12 studies over 3 days, 3 studies a run, a backfill of 4 days (its runs overlap)."""
    stack = deployment["stack"]
    landing = deployment["landing"] / "archive"
    days = ["20230301", "20230302", "20230303"]
    expected = {_study(landing, f"d{day}-{n}", seed=300 + 10 * i + n, study_date=day)
                for i, day in enumerate(days) for n in range(4)}  # fmt: skip
    conf = {"select_by": "study_date", "landing": str(landing), "tiers": TIERS[:1],
            "settle_seconds": 0, "max_studies_per_run": 3}  # fmt: skip
    import json

    stack.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", "2023-03-01",
              "--to-date", "2023-03-04", "--dag-run-conf", json.dumps(conf))  # fmt: skip

    def backfill_runs() -> list[dict[str, Any]] | None:
        runs = stack.api("GET", f"/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=50")["dag_runs"]
        done = [r for r in runs if r["state"] in ("success", "failed")]
        return runs if len(runs) >= 4 and len(done) == len(runs) else None

    runs = wait_for(backfill_runs, timeout=RUN_TIMEOUT, what="the backfill", every=3)
    planned: list[str] = []
    for run in runs:
        assert run["state"] == "success", run
        units = _xcom(stack, run["dag_run_id"], "discover")["units"]  # ids and counts only
        studies = json.loads(_plan_file(deployment["output"], run["dag_run_id"]).read_text())[
            "studies"
        ]
        assert len(studies) <= 3 and sum(u["studies"] for u in units) == len(studies)
        planned += studies
    assert sorted(planned) == sorted(expected)  # every study planned, none by two runs
    jobs = query(deployment["catalogue"],
                      "SELECT study_uid, count(*), min(status) FROM jobs WHERE tier = :t "
                      "GROUP BY study_uid", t=TIERS[0])  # fmt: skip
    done = {row[0]: row[1:] for row in jobs if row[0] in expected}
    assert done == {uid: (1, "ok") for uid in expected}  # all 12 done, each exactly once
    left = query(deployment["catalogue"], "SELECT count(*) FROM claims")
    assert left == [(0,)]  # every run released its claims
    shutil.rmtree(landing)


def test_4_a_patient_name_in_landing_paths_reaches_no_task_log_xcom_or_view(
    deployment: dict[str, Any],
) -> None:
    """Folders, file names and headers name the patient (tests/faults/planted.py); after a run
    on real workers only DICOM headers and the operators' tables (file_locations, the landing
    index landing_files) hold the name: not the manifests, plan.json, claims or backlog."""
    stack = deployment["stack"]
    landing = deployment["landing"] / "planted"
    plant_landing(landing)
    run_id = _trigger(stack, landing)
    assert wait_run(stack, run_id) == "success"
    task_logs = [p for p in (stack.home / "logs").rglob("*") if p.is_file() and run_id in str(p)]
    assert any(b"discovery:" in p.read_bytes() for p in task_logs), task_logs
    process_logs = list(stack.home.glob("*.log"))
    leaks = [f for p in task_logs + process_logs for f in leaks_in_text(str(p), p.read_bytes())]
    xcoms = query(
        deployment["metadata"],
        "SELECT task_id, map_index, value FROM xcom WHERE run_id = :r",
        r=run_id,
    )
    assert {row[0] for row in xcoms} >= {"discover", "compress", "summary"}
    leaks += leaks_in_text("XCom", repr(xcoms))
    leaks += postgres_leaks(deployment["catalogue"]) + leaks_under(deployment["output"])
    events = deployment["lineage"]  # the OpenLineage events of every run so far
    leaks += leaks_in_text("OpenLineage", events.read_bytes() if events.exists() else b"")
    assert leaks == []


def test_5_a_mixed_archive_of_small_studies_runs_in_a_few_units_and_one_study_is_retried_alone(
    deployment: dict[str, Any],
) -> None:
    """46 small studies x 3 tiers: at most 3 compress instances a tier, each named with its
    study count; every pair ok once. Then an operator's retry of one study x one tier
    (study_uids, tiers, reprocess=all) makes exactly one new attempt."""
    stack = deployment["stack"]
    landing = deployment["landing"] / "mixed"
    tiers = ["j2k-lossless", "j2k-r10", "j2k-r20"]
    studies = [_study(landing, f"m{n}", seed=500 + n, slices=1 + n % 3, size=32 + 16 * (n % 4))
               for n in range(46)]  # fmt: skip
    run_id = _trigger(stack, landing, tiers=tiers)
    assert wait_run(stack, run_id) == "success"
    compress = [ti for ti in _task_instances(stack, run_id) if ti["task_id"] == "compress"]
    for tier in tiers:
        mine = [str(ti["rendered_map_index"]) for ti in compress
                if str(ti["rendered_map_index"]).split(" · ")[2] == tier]  # fmt: skip
        assert 1 <= len(mine) <= 3, mine
        counts = [int(label.split(" · ")[1].split()[0]) for label in mine]
        assert sum(counts) == len(studies), mine
        assert all(label.endswith(f" · {n} ok") for label, n in zip(mine, counts, strict=True))
    catalogue = deployment["catalogue"]
    jobs = query(catalogue, "SELECT study_uid, tier, count(*), min(status) FROM jobs "
                 "WHERE study_uid = ANY(:s) GROUP BY study_uid, tier", s=studies)  # fmt: skip
    assert {(r[0], r[1]): (r[2], r[3]) for r in jobs} == {
        (s, t): (1, "ok") for s in studies for t in tiers
    }  # all 138 pairs, each once
    first = query(catalogue, "SELECT max(id) FROM jobs")[0][0]
    retry = _trigger(stack, landing, tiers=["j2k-r20"], study_uids=[studies[7]], reprocess="all")
    assert wait_run(stack, retry) == "success"
    new = query(catalogue, "SELECT study_uid, tier, status FROM jobs WHERE id > :i", i=first)
    assert new == [(studies[7], "j2k-r20", "ok")]
    (label,) = [str(ti["rendered_map_index"]) for ti in _task_instances(stack, retry)
                if ti["task_id"] == "compress"]  # fmt: skip
    assert label == "u0000 · 1 study · j2k-r20 · 1 ok"
