"""The hospital mix of ``dcmtier bench scale --dag --mix hospital``: what a day of a hospital's
archive looks like, scaled down to run on 2 cores in minutes, and the work-unit figures.

Of every 10 studies, 7 are radiographs of one or two 256 x 256 images (modality DX), 2 CT
series of 20 slices of 128 x 128, 1 an MR series of 12 slices of 128 x 128 (the synthetic
phantom of `dcmtier.sample`, its modality tag set). The study a position gets is fixed (the
order repeats every 10), so two rows of the benchmark compress the same mix.

Orchestration share (per row, from Airflow's and the catalogue's own timestamps): the worker
slot time (``wall_s x slots``) not spent in dcmtier's own work, over that slot time. Two
readings of dcmtier's own work, both printed:

- ``orchestration_share``: the time the encode and compress tasks spent in dcmtier's unit
  code (``work_s`` in their XCom: `dcmtier.orchestration.units.run_unit` /
  ``prepare_unit`` from entry to return, each study's attempt and its bookkeeping in the
  catalogue: claims, holds, the study's rows). What is left is Airflow's: scheduling,
  queueing, the task process's start-up, DAG parsing, XCom, the small tasks (discover, units,
  tiers, summary, publish) and idle slots.
- ``orchestration_share_attempts``: the stricter reading, dcmtier's work taken as the attempts'
  durations in the catalogue only (``jobs.finished_at - started_at``, each study x tier)
  plus the layered encodes' ``encode_s``: a unit's per-study bookkeeping outside its attempts
  counts as orchestration too.

Slot time in task bodies is the task instances' ``duration`` summed; outside them, the rest
of the slot time (scheduling, queueing, process start, idle slots).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from dcmtier.bench.airflow_stack import query

MIX = ("DX",) * 7 + ("CT",) * 2 + ("MR",)
SHAPES = {  # modality: (images per study, rows = columns)
    "DX": (1, 256),
    "CT": (20, 128),
    "MR": (12, 128),
}


def lay_out_mix(landing: Path, studies: int, first: date, days: int, seed: int) -> list[str]:
    """``studies`` studies of the hospital mix, StudyDates round-robin over ``days`` days from
    ``first``; returns their StudyInstanceUIDs."""
    from pydicom import dcmread

    from dcmtier.sample import write_ct_series

    uids = []
    for n in range(studies):
        modality = MIX[n % len(MIX)]
        images, size = SHAPES[modality]
        if modality == "DX" and n % 3 == 0:
            images = 2  # a radiograph with a second view
        day = (first + timedelta(days=n % days)).strftime("%Y%m%d")
        files = write_ct_series(landing / f"{modality.lower()}{n:05d}", slices=images,
                                rows=size, columns=size, seed=seed + n, study_date=day,
                                modality=modality)  # fmt: skip
        uids.append(str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID))
    return uids


def work_seconds(
    metadata_url: str, catalogue_url: str, run_ids: Sequence[str], studies: Sequence[str]
) -> dict[str, float]:
    """dcmtier's own work in a row: its attempts' durations and its layered encodes' time."""
    attempts = 0.0
    for n in range(0, len(studies), 500):
        chunk = list(studies[n : n + 500])
        rows = query(catalogue_url, "SELECT coalesce(sum(extract(epoch FROM finished_at - "
                     "started_at)), 0) FROM jobs WHERE study_uid = ANY(:s)", s=chunk)  # fmt: skip
        attempts += float(rows[0][0])
    values = query(metadata_url, "SELECT task_id, value FROM xcom WHERE task_id IN "
                   "('encode', 'compress') AND key = 'return_value' AND run_id = ANY(:r)",
                   r=list(run_ids))  # fmt: skip
    encode = sum(float(_json(v).get("encode_s") or 0.0) for t, v in values if t == "encode")
    units = sum(float(_json(v).get("work_s") or 0.0) for _, v in values)
    return {"attempts_s": round(attempts, 1), "encode_s": round(encode, 1),
            "units_s": round(units, 1)}  # fmt: skip


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, bytes | str):
        value = json.loads(value)
    return dict(value) if isinstance(value, dict) else {}


def share_figures(result: dict[str, Any], work: dict[str, float]) -> dict[str, Any]:
    """Slot time in task bodies and outside, and the orchestration share, of one row."""
    slot = float(result["wall_s"]) * int(result["slots"]) - float(result["other_busy_s"])
    attempts = work["attempts_s"] + work["encode_s"]
    own = work["units_s"]
    bodies = float(result["busy_s"])
    return {
        "slot_s": round(slot, 1),
        "in_task_bodies_s": round(bodies, 1),
        "outside_task_bodies_s": round(slot - bodies, 1),
        "dcmtier_work_s": round(own, 1),
        "dcmtier_attempts_s": round(attempts, 1),
        **work,
        "orchestration_share": round(1 - own / slot, 3) if slot > 0 else None,
        "orchestration_share_attempts": round(1 - attempts / slot, 3) if slot > 0 else None,
    }


def row_line(unit_seconds: float, result: dict[str, Any]) -> str:
    """One printed row of the benchmark."""
    share = result["share"]
    return (
        f"unit_seconds={unit_seconds:g}: wall {result['wall_s']:.0f} s, "
        f"{result['task_instances_run']} task instances "
        f"({result['per_task'].get('compress', {}).get('success', 0)} compress), slot time "
        f"{share['slot_s']:.0f} s: {share['in_task_bodies_s']:.0f} s in task bodies, "
        f"{share['outside_task_bodies_s']:.0f} s outside, dcmtier's work "
        f"{share['dcmtier_work_s']:.0f} s (attempts {share['dcmtier_attempts_s']:.0f} s), "
        f"orchestration share {100 * (share['orchestration_share'] or 0):.1f} % "
        f"({100 * (share['orchestration_share_attempts'] or 0):.1f} % outside the attempts), "
        f"metadata "
        f"{result['metadata']['growth_per_study_bytes'] / 1e3:.2f} kB a study, "
        f"{result['pairs_done_once_ok']}/{result['pairs_expected']} pairs done once"
    )


def projection(rows: Sequence[dict[str, Any]], *, studies: int = 1_000_000,
               per_run: int = 1000) -> dict[str, Any] | None:  # fmt: skip
    """The metadata a task instance and a run cost, from two rows with different task
    instance counts (growth = runs x per_run + task instances x per_ti), and what ``studies``
    studies in runs of ``per_run`` would cost with the last row's ``unit_seconds``: its units
    sized by the measured work per study x tier. None without two usable rows."""
    if len(rows) < 2:
        return None
    a, b = rows[0], rows[-1]
    growth = [r["metadata"]["after_bytes"] - r["metadata"]["before_bytes"] for r in (a, b)]
    tis = [int(r["task_instances"]) for r in (a, b)]
    if tis[0] == tis[1] or not b.get("unit_seconds"):
        return None
    per_ti = (growth[0] - growth[1]) / (tis[0] - tis[1])
    per_run_bytes = (growth[1] - per_ti * tis[1]) / max(1, int(b["runs"]))
    pairs = max(1, int(b["pairs_expected"]))
    # the units' measured time a pair (attempts and their bookkeeping, layered encodes): the
    # larger reading, so no fewer units than the work would make
    work_per_pair = float(b["share"].get("units_s") or b["share"]["attempts_s"]) / pairs
    tiers = len(b["tiers"])
    units_per_run = max(1, -(-per_run * work_per_pair // float(b["unit_seconds"])))
    runs = -(-studies // per_run)
    # a run's task instances besides its units' (discover, summary, ...), skipped ones too:
    # they are rows in the metadata database as well
    per_task = b.get("per_task") or {}
    mapped = {"encode", "compress"}
    fixed = sum(sum(states.values()) for task, states in per_task.items() if task not in mapped)
    # unmeasured: discover, units, tiers, publish, viewer_check, summary
    fixed_per_run = -(-fixed // max(1, int(b["runs"]))) if per_task else 6
    instances = int(runs * (fixed_per_run + units_per_run * (1 + tiers)))
    return {
        "metadata_per_task_instance_bytes": round(per_ti),
        "metadata_per_run_bytes": round(per_run_bytes),
        "work_per_study_tier_s": round(work_per_pair, 3),
        "studies": studies, "studies_per_run": per_run, "runs": runs,
        "units_per_run": int(units_per_run), "fixed_task_instances_per_run": int(fixed_per_run),
        "task_instances": instances,
        "metadata_bytes": round(runs * per_run_bytes + instances * per_ti),
    }  # fmt: skip
