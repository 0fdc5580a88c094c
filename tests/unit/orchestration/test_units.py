"""A work unit's tasks without Airflow: studies one after another, each its own attempt; a
cleared unit redoes only what this run did not finish; counts for XCom and the grid."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest
from sqlalchemy import text

from dcmtier.catalogue import Catalogue, JobContext
from dcmtier.discovery.plan import PlanRequest, plan, read_unit
from dcmtier.orchestration.units import (
    outcome_words,
    prepare_unit,
    run_unit,
    summarise,
    unit_label,
)
from dcmtier.sample import write_ct_series

TIER = "j2k-r20"


def _unit_result(unit: str, statuses: dict[str, int], studies: int) -> dict[str, object]:
    return {"unit": unit, "tier": TIER, "studies": studies, "statuses": statuses,
            "gate_outcomes": {"fallback": 2}, "pixel_bytes_in": 100, "pixel_bytes_out": 25,
            "file_bytes_in": 120, "file_bytes_out": 30}  # fmt: skip


def test_summary_totals_the_units_results() -> None:
    results = [_unit_result("u0000", {"ok": 3, "partial": 1}, 4),
               _unit_result("u0001", {"ok": 2}, 2), None]  # fmt: skip
    totals = summarise(results)
    assert totals["statuses"] == {"ok": 5, "partial": 1}
    assert totals["finished"] == 6 and totals["studies"] == 6 and totals["units"] == 2
    assert totals["gate_outcomes"] == {"fallback": 4}
    assert totals["pixel_ratio"] == 4.0


def test_the_outcome_words_count_what_did_not_come_out_clean() -> None:
    assert outcome_words({"statuses": {"ok": 37}}) == "37 ok"
    words = outcome_words({"statuses": {"failed": 1, "ok": 33, "partial": 3}})
    assert words == "1 failed, 3 partial"
    assert outcome_words({"statuses": {}, "done_before": 4}) == "nothing to do (4 done before)"


def test_the_dags_template_renders_the_label_the_package_documents() -> None:
    import ast

    source = Path(__file__).resolve().parents[3] / "dags" / "dicom_archive_compression.py"
    tree = ast.parse(source.read_text())
    values = {
        t.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant | ast.BinOp)
        for t in node.targets
        if isinstance(t, ast.Name) and t.id == "UNIT"
    }
    label = values["UNIT"] + " · {{ task.op_kwargs['tier'] }}"
    for count in (1, 37):
        unit = {"id": "u0042", "studies": count}
        task = {"op_kwargs": {"unit": unit, "tier": TIER}}
        rendered = jinja2.Template(label).render(task=task)
        assert rendered == unit_label(unit, TIER)
    assert unit_label({"id": "u0042", "studies": 37}, TIER) == "u0042 · 37 studies · j2k-r20"
    assert unit_label({"id": "u0001", "studies": 1}, TIER) == "u0001 · 1 study · j2k-r20"


@pytest.fixture
def planned(tmp_path: Path, catalogue: Catalogue) -> tuple[Path, list[str]]:
    landing = tmp_path / "landing"
    for n in range(3):
        write_ct_series(landing / f"s{n}", slices=2, rows=32, columns=32, seed=40 + n)
    broken = landing / "s1" / "CT0002.dcm"
    broken.write_bytes(broken.read_bytes()[:-500])  # header readable, pixels cut short
    request = PlanRequest(landing=str(landing), output=tmp_path / "out", tiers=[TIER],
                          run_id="manual__u", now=datetime.now(UTC), settle_seconds=0)  # fmt: skip
    result = plan(request, catalogue)
    assert [u.id for u in result.units] == ["u0000"]  # three tiny studies: one unit
    return tmp_path / "out", read_unit(tmp_path / "out", "manual__u", "u0000")


def _jobs(catalogue: Catalogue) -> list[tuple[str, str, int]]:
    with catalogue.engine.connect() as connection:
        rows = connection.execute(text("SELECT study_uid, status, try_number FROM jobs"))
        return sorted((str(r[0]), str(r[1]), int(r[2])) for r in rows)


def test_a_unit_runs_each_study_as_its_own_attempt_and_a_retry_redoes_only_the_rest(
    planned: tuple[Path, list[str]], catalogue: Catalogue
) -> None:
    out, studies = planned
    url = str(catalogue.engine.url)
    prepare_unit("u0000", output=out, run_id="manual__u", catalogue_url=url)
    context = JobContext("dag", "manual__u", "compress", 0, 1)
    result = run_unit("u0000", TIER, output=out, context=context, catalogue_url=url)
    assert result["studies"] == 3 and result["statuses"] == {"ok": 2, "partial": 1}
    assert outcome_words(result) == "1 partial"
    assert len(result["pairs"]) == 3 and len(result["not_clean"]) == 1
    assert Path(result["changes"]).is_file()
    first = _jobs(catalogue)
    assert len(first) == 3 and {s for s, _, _ in first} == set(studies)
    # one study's attempt did not finish (its worker was killed): a cleared unit redoes it only
    killed = next(uid for uid, status, _ in first if status == "ok")
    with catalogue.engine.begin() as connection:
        connection.execute(text("UPDATE jobs SET status = 'interrupted' WHERE study_uid = :s"),
                           {"s": killed})  # fmt: skip
    retried = run_unit("u0000", TIER, output=out, catalogue_url=url,
                       context=JobContext("dag", "manual__u", "compress", 0, 2))  # fmt: skip
    assert retried["done_before"] == 2 and retried["statuses"] == {"ok": 1}
    assert [j for j in _jobs(catalogue) if j[2] == 2] == [(killed, "ok", 2)]


def test_the_dags_candidates_and_viewers_params_keep_jpeg_xl_out_of_a_choosing_tier(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    import json

    from dcmtier.orchestration.tasks import _candidates
    from tests.unit.work.frontier_cases import write_case

    write_case(tmp_path / "landing" / "s0", "padded", slices=2, size=48)
    request = PlanRequest(landing=str(tmp_path / "landing"), output=tmp_path / "out",
                          tiers=["maxerr20"], run_id="manual__c", now=datetime.now(UTC),
                          settle_seconds=0)  # fmt: skip
    plan(request, catalogue)
    context = JobContext("dag", "manual__c", "compress", 0, 1)
    params = {"candidates": [], "viewers": ["cornerstone-5.6.8"]}  # as the trigger form gives
    url = str(catalogue.engine.url)
    result = run_unit("u0000", "maxerr20", output=tmp_path / "out", context=context,
                      catalogue_url=url, candidates=_candidates(params))  # fmt: skip
    assert result["statuses"] == {"ok": 1}
    with catalogue.engine.connect() as connection:
        codecs = {r[0] for r in connection.execute(text("SELECT codec FROM derived_instances"))}
        (parameters,) = connection.execute(text("SELECT parameters FROM jobs")).scalars()
    assert codecs and "jxl" not in codecs  # unrestricted, this series takes JPEG XL
    recorded = json.loads(parameters) if isinstance(parameters, str) else parameters
    assert recorded["candidates"] == ["htj2k", "jls", "j2k"]
    assert not _candidates({"candidates": [], "viewers": []}).restricts
