"""OpenLineage events and asset-event extras of a whole ``dag.test()`` run.

The run happens in a child process with the file transport configured, as a user would switch
OpenLineage on (``AIRFLOW__OPENLINEAGE__TRANSPORT``); the provider reads its configuration once
per process, so the other DAG tests in this process keep it off.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dcmtier.orchestration.lineage import FACET_KEY
from dcmtier.sample import write_ct_series

DAG_ID = "dicom_archive_compression"
DAGS = Path(__file__).resolve().parents[2] / "dags"
TIERS = ["j2k-lossless", "j2k-r20"]
PLANTED = "DOE_JANE"  # a patient's name in the landing folder and file names

RUN = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[2]]
run = dag.test(run_conf=json.loads(sys.argv[3]))
print("STATE", run.state)
"""


@pytest.fixture(scope="module")
def lineage_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lineage")
    landing = root / "landing"
    for n, seed in ((1, 21), (2, 22)):
        files = write_ct_series(
            landing / f"{PLANTED}_{n}", slices=2, rows=128, columns=128, seed=seed
        )
        for path in files:
            path.rename(path.with_name(f"{PLANTED}_{path.name}"))
    events = root / "events.jsonl"
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
           "AIRFLOW__OPENLINEAGE__NAMESPACE": "dcmtier-test"}  # fmt: skip
    conf = {"landing": str(landing), "output": str(root / "out"), "tiers": TIERS,
            "settle_seconds": 0}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(DAGS), DAG_ID, json.dumps(conf)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert "STATE" in proc.stdout and "success" in proc.stdout, (
        proc.stdout[-3000:] + proc.stderr[-3000:]
    )
    return {
        "events": [json.loads(line) for line in events.read_text().splitlines()],
        "landing": landing,
        "root": root,
    }


def _complete(events: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    return [
        e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{DAG_ID}.{task}"
    ]


def test_every_compress_instance_reports_its_studies_in_and_their_outputs_out(
    airflow_db: Path, lineage_run: dict[str, Any]
) -> None:
    """One work unit (two small studies) x two tiers: one event per unit x tier, naming each
    study x tier's datasets, every output's facet its own study's."""
    complete = _complete(lineage_run["events"], "compress")
    assert len(complete) == len(TIERS)  # one unit of two studies x two tiers
    pairs = set()
    for event in complete:
        studies = {source["name"].removeprefix("studies/") for source in event["inputs"]}
        assert len(studies) == 2
        assert {s["namespace"] for s in event["inputs"]} == {lineage_run["landing"].as_uri()}
        names = [o["name"] for o in event["outputs"]]
        (tier,) = {n.split("=")[1].split("/")[0] for n in names if n.startswith("quality/")}
        for study in studies:
            pairs.add((study, tier))
            assert f"quality/tier={tier}/study={study}" in names
            assert f"packages/{study}/{tier}.zip" in names
            assert any(n.startswith(f"derived/{tier}/{study}/") for n in names)
        for output in event["outputs"]:  # each output's facet names its own study
            facet = output["facets"][FACET_KEY]
            study = facet["study_uid"]
            assert f"/{study}" in output["name"] or f"study={study}" in output["name"]
            assert (facet["tier"], facet["codec"]) == (tier, "j2k")
            assert facet["bytes_in"] > facet["bytes_out"] > 0
            assert facet["achieved_ratio"] == pytest.approx(
                facet["bytes_in"] / facet["bytes_out"], rel=1e-3
            )
    assert len(pairs) == 4


def test_the_partition_carries_its_schema_and_the_gate_as_assertions(
    airflow_db: Path, lineage_run: dict[str, Any]
) -> None:
    partitions = [o for event in _complete(lineage_run["events"], "compress")
                  for o in event["outputs"] if o["name"].startswith("quality/")]  # fmt: skip
    assert len(partitions) == 2 * len(TIERS)  # one per study x tier
    for partition in partitions:
        fields = {f["name"] for f in partition["facets"]["schema"]["fields"]}
        assert {"psnr_db", "ssim", "max_abs_diff", "source_sop_uid"} <= fields
        assertions = partition["facets"]["dataQualityAssertions"]["assertions"]
        assert assertions and all(a["success"] for a in assertions)
        facet = partition["facets"][FACET_KEY]
        if facet["tier"] == "j2k-lossless":
            assert [a["assertion"] for a in assertions] == ["max_abs_diff <= 0 modality unit"]
            # the client leaves None out of the JSON: an infinite PSNR has no minimum
            assert "psnr_min_db" not in facet and facet["ssim_min"] == 1.0
        else:
            assert {a["column"] for a in assertions} == {
                "max_abs_diff",
                "psnr_db_range",
                "ssim_range",
            }
            assert 30 < facet["psnr_min_db"] < 90 and 0.9 < facet["ssim_min"] < 1
        assert partition["outputFacets"]["outputStatistics"]["rowCount"] == 2


def test_discover_reports_the_landing_area(airflow_db: Path, lineage_run: dict[str, Any]) -> None:
    (event,) = _complete(lineage_run["events"], "discover")
    assert [i["namespace"] for i in event["inputs"]] == [lineage_run["landing"].as_uri()]


def test_no_event_holds_a_landing_file_name(airflow_db: Path, lineage_run: dict[str, Any]) -> None:
    for event in lineage_run["events"]:
        text = json.dumps(event)
        assert PLANTED not in text, event["job"]["name"]


def test_asset_events_name_the_unit_and_list_each_study_tier_package(
    airflow_db: Path, lineage_run: dict[str, Any]
) -> None:
    from dcmtier.orchestration.tasks import changed_packages

    with sqlite3.connect(airflow_db / "airflow.db") as conn:
        rows = conn.execute(
            "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE e.extra LIKE ?",
            (f"%{lineage_run['root'].name}%",),
        ).fetchall()
    extras: dict[str, list[dict[str, Any]]] = {}
    for name, extra in rows:
        extras.setdefault(name, []).append(json.loads(extra))
    assert sorted(extras) == ["dcmtier_packages", "dcmtier_quality"]
    for events in extras.values():
        assert sorted((e["unit"], e["tier"]) for e in events) == [("u0000", t) for t in TIERS]
        assert all(e["studies"] == 2 and e["statuses"] == {"ok": 2} for e in events)
        listed = changed_packages({"asset": [type("E", (), {"extra": e}) for e in events]})
        assert len({(c["study_uid"], c["tier"]) for c in listed}) == len(listed) == 4
        for change in listed:
            assert change["status"] == "ok" and len(change["package_sha256"]) == 64
            assert change["package_uri"].endswith(
                f"/packages/{change['study_uid']}/{change['tier']}.zip"
            )
            assert change["ratio"] > 1 and change["package_bytes"] > 0
