"""A work unit's tasks, runnable without Airflow: its studies one after another, each through
the per-study entry points of `dcmtier.orchestration.items`.

A unit's studies are read from the membership file discovery wrote
(`dcmtier.discovery.plan.read_unit`). Each study x tier is its own attempt in the catalogue,
so a study that fails leaves the others done. A study that raises (an infrastructure error:
output not writable, catalogue unreachable) is logged and the unit goes on; the unit raises at
the end so that its task fails and can be cleared, or at once after ``GIVE_UP_AFTER`` such
errors in a row (the infrastructure is down, not one study). A cleared unit redoes only the
pairs whose latest attempt is not this run's finished one (`catalogue.attempts`).

The unit's result is counts only (it is the task's XCom); the per-study results go to the
OpenLineage event of the task (``pairs``, dropped before XCom) and to a small JSON file
beside the unit's membership file that the asset events point at.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dcmtier.catalogue import Catalogue, JobContext, resolve_url
from dcmtier.codec.candidates import Candidates
from dcmtier.discovery.plan import read_unit, work_folder, write_json
from dcmtier.errors import DcmtierError, Interrupted, one_line
from dcmtier.orchestration.events import asset_extra
from dcmtier.orchestration.items import prepare_layers, run_pair
from dcmtier.records import STUDY_OK, outcome_text
from dcmtier.work.publish import OutputRoot

log = logging.getLogger(__name__)

GIVE_UP_AFTER = 3  # infrastructure errors in a row that end a unit early
NOT_CLEAN_IN_XCOM = 20  # lines of studies that did not come out clean kept in the result


class UnitFailed(DcmtierError):
    """Some studies of a unit raised: the unit's task fails, and clearing it redoes them."""


def run_unit(
    unit: str,
    tier: str,
    *,
    output: Path | str | OutputRoot,
    context: JobContext,
    catalogue_url: str | None = None,
    jobs: int = 1,
    on_gate_failure: str | None = None,
    candidates: Candidates | None = None,
) -> dict[str, Any]:
    """Run ``tier`` for each study of ``unit`` not yet done by this run; the unit's result."""
    from dcmtier.catalogue.attempts import finished_in_run

    started = time.perf_counter()
    root = output if isinstance(output, OutputRoot) else OutputRoot.of(output)
    studies = read_unit(root.location, context.run_id, unit)
    catalogue = _catalogue(root, catalogue_url)
    results: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    try:
        with catalogue.engine.connect() as connection:
            done = finished_in_run(connection, context.run_id, studies, tier)
        for uid in studies:
            if uid in done:
                continue
            try:
                result = run_pair(uid, tier, output=root, context=context, jobs=jobs,
                                  on_gate_failure=on_gate_failure, candidates=candidates,
                                  catalogue=catalogue)  # fmt: skip
            except Interrupted:
                raise
            except Exception as exc:
                errors[uid] = one_line(exc)
                log.exception("unit %s: study %s x %s raised", unit, uid, tier)
                if _in_a_row(errors, studies, done, uid) >= GIVE_UP_AFTER:
                    break
                continue
            if result is not None:
                results.append(result)
    finally:
        catalogue.close()
    summary = unit_result(unit, tier, len(studies), results, skipped=len(done))
    summary["changes"] = _write_changes(root, context.run_id, unit, tier, results)
    summary["work_s"] = round(time.perf_counter() - started, 3)  # in dcmtier's code, all of it
    if errors:
        first = next(iter(errors.items()))
        raise UnitFailed(
            f"unit {unit} x {tier}: {len(errors)} of {len(studies)} studies raised "
            f"({outcome_words(summary)} otherwise; first: study {first[0]}: {first[1]}); fix "
            "the cause and clear the task: it redoes only the studies not done"
        )
    summary["pairs"] = results  # for the task's lineage; dropped before XCom
    return summary


def prepare_unit(
    unit: str, *, output: Path | str | OutputRoot, run_id: str, catalogue_url: str | None = None
) -> dict[str, Any]:
    """The layered encode of each study of ``unit``, once for its tier tasks; totals."""
    started = time.perf_counter()
    root = output if isinstance(output, OutputRoot) else OutputRoot.of(output)
    studies = read_unit(root.location, run_id, unit)
    totals: Counter[str] = Counter()
    catalogue = _catalogue(root, catalogue_url)
    try:
        for uid in studies:
            summary = prepare_layers(uid, output=root, run_id=run_id, catalogue=catalogue)
            totals.update({k: v for k, v in summary.items() if isinstance(v, int | float)})
    finally:
        catalogue.close()
    return {"unit": unit, "studies": len(studies), **{k: round(v, 3) for k, v in totals.items()},
            "work_s": round(time.perf_counter() - started, 3)}  # fmt: skip


def _catalogue(root: OutputRoot, url: str | None) -> Catalogue:
    """The catalogue, its schema revision not checked again: the run's discover task checked
    it is at this code's head (``Catalogue.connect``), which costs a task process a load of
    every migration script (about 0.1-0.2 s of CPU). Its connections are pooled for the
    unit's many short transactions and closed with it."""
    from dcmtier.catalogue.engine import make_engine

    return Catalogue(make_engine(resolve_url(url, root.data_dir(url)), pooled=True))


def unit_result(
    unit: str, tier: str, studies: int, results: Sequence[Mapping[str, Any]], *, skipped: int = 0
) -> dict[str, Any]:
    """Counts over a unit's study results for one tier (what XCom and the grid get)."""
    statuses = Counter(str(r["status"]) for r in results)
    outcomes: Counter[str] = Counter()
    for r in results:
        outcomes.update({str(k): int(v) for k, v in (r.get("gate_outcomes") or {}).items()})
    return {
        "unit": unit,
        "tier": tier,
        "studies": studies,
        "done_before": skipped,  # finished by an earlier try of this run
        "statuses": dict(sorted(statuses.items())),
        "gate_outcomes": dict(sorted(outcomes.items())),
        "instances": sum(int(r["instances"]) for r in results),
        "pixel_bytes_in": sum(int(r["pixel_bytes_in"]) for r in results),
        "pixel_bytes_out": sum(int(r["pixel_bytes_out"]) for r in results),
        "file_bytes_in": sum(int(r["file_bytes_in"]) for r in results),
        "file_bytes_out": sum(int(r["file_bytes_out"]) for r in results),
        "not_clean": [
            f"…{r['study_uid'][-12:]} · {tier} · "
            + outcome_text(r["status"], r["counts"], int(r["instances"]))
            for r in results
            if r["status"] != STUDY_OK
        ][:NOT_CLEAN_IN_XCOM],
    }


def summarise(results: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Totals over a run's unit x tier results (None for a task that did not finish).

    ``gate_outcomes`` counts the frames each ``on_gate_failure`` action handled: quality
    outcomes, which never fail the run.
    """
    done = [r for r in results if r]
    statuses: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    studies: dict[str, int] = {}
    for r in done:
        statuses.update(r["statuses"])
        outcomes.update(r.get("gate_outcomes") or {})
        studies[str(r["unit"])] = int(r["studies"])
    pixel_in = sum(int(r["pixel_bytes_in"]) for r in done)
    pixel_out = sum(int(r["pixel_bytes_out"]) for r in done)
    return {
        "finished": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "gate_outcomes": dict(sorted(outcomes.items())),
        "units": len(studies),
        "studies": sum(studies.values()),
        "pixel_bytes_in": pixel_in,
        "pixel_bytes_out": pixel_out,
        "pixel_ratio": round(pixel_in / pixel_out, 3) if pixel_out else None,
        "file_bytes_in": sum(int(r["file_bytes_in"]) for r in done),
        "file_bytes_out": sum(int(r["file_bytes_out"]) for r in done),
    }


def outcome_words(result: Mapping[str, Any]) -> str:
    """``all ok``, ``3 partial, 1 failed``: the grid's words for a unit x tier."""
    statuses: Mapping[str, int] = result["statuses"]
    if not statuses:
        return f"nothing to do ({result.get('done_before', 0)} done before)"
    if set(statuses) == {STUDY_OK}:
        return f"{statuses[STUDY_OK]} ok"
    return ", ".join(f"{n} {status}" for status, n in statuses.items() if status != STUDY_OK)


def unit_label(unit: Mapping[str, Any], tier: str) -> str:
    """``u0042 · 37 studies · j2k-r20``: what the DAG's ``map_index_template`` renders."""
    count = int(unit["studies"])
    return f"{unit['id']} · {count} {'study' if count == 1 else 'studies'} · {tier}"


def _in_a_row(errors: Mapping[str, str], studies: Sequence[str], done: set[str], last: str) -> int:
    """How many of the studies tried up to ``last`` raised in a row, ending with it."""
    tried = [uid for uid in studies[: studies.index(last) + 1] if uid not in done]
    run = 0
    for uid in reversed(tried):
        if uid not in errors:
            break
        run += 1
    return run


def _write_changes(
    root: OutputRoot, run_id: str, unit: str, tier: str, results: Sequence[Mapping[str, Any]]
) -> str:
    """``work/<run>/units/<unit>.<tier>.changes.json``: each study x tier package the unit
    made (study, tier, status, package URI and SHA-256), what its asset events point at."""
    path = f"{work_folder(root.location, run_id)}/units/{unit}.{tier}.changes.json"
    write_json(path, {"changes": [asset_extra(r) for r in results]})
    return path
