"""The scale benchmark's DAG figures: a ``study_date`` backfill on a real Airflow deployment.

``run_backfill`` starts the integration tests' deployment (``dcmtier.bench.airflow_stack``:
api-server, scheduler, dag-processor and two Celery workers of 2 slots each, Redis broker) on a
fresh PostgreSQL metadata database, with the catalogue in another fresh database. It lays out
``studies`` small CT studies whose StudyDates are spread over ``days`` days, runs
``airflow backfill create`` over those days with ``select_by=study_date``, waits for every run
to end and reads what it needs from the metadata database itself (the REST API pages at 100).
``run_mix`` does the same on one deployment for the hospital mix (`dcmtier.bench.mix`) x 13
tiers, once per ``unit_seconds`` value, and adds each row's orchestration share.

Definitions (all from Airflow's own timestamps in ``task_instance`` and ``dag_run``):

- ``wall_s``: from the ``backfill create`` command to the end of the last run.
- ``busy_s``: the sum of the task instances' ``duration`` (start to end of the task process),
  over those that ran (``task_instances_run``: not the ones skipped as empty expansions).
- ``overhead_per_ti_s``: ``(wall_s x slots - busy_s - other_busy_s) / task_instances_run``
  (``other_busy_s``: task instances of other runs that started meanwhile, e.g. the DAG's own
  scheduled run of today; the asset-triggered example DAG is paused), the worker slot time
  spent per task instance outside any task: scheduling, queueing through Celery, starting the
  task process, idle slots while a run waits on one task. ``slots`` is the 4 Celery slots.
- ``schedulable_to_start_s``: per task instance, ``start_date - scheduled_dttm`` (the scheduler
  set it ``scheduled`` once its upstream tasks were done), split into ``scheduled_dttm ->
  queued_dttm`` (the scheduler's queueing, pool slots included) and ``queued_dttm ->
  start_date`` (Celery and the task process starting): median, 90th percentile, max.
- ``metadata``: ``pg_database_size`` of the metadata database after the DAG was parsed and
  before the backfill, and after it (not vacuumed), the growth per study, and the tables that
  grew most (``pg_total_relation_size``).

It checks what the integration test checks: every study done once per tier, no claim left.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from dcmtier.bench.airflow_stack import query

DAG_ID = "dicom_archive_compression"
# the example consumer of the packages asset: one run per compress instance's asset event,
# which would take worker slots from the backfill; paused before it starts
PAUSED = ("dcmtier_packages_changed",)
TIERS = ("j2k-lossless", "j2k-r20")
SLOTS = 4  # two Celery workers, concurrency 2 each (airflow_stack)


def _table_sizes(url: str) -> dict[str, int]:
    rows = query(url, "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables")
    return {str(name): int(size) for name, size in rows}


def _database_size(url: str) -> int:
    return int(query(url, "SELECT pg_database_size(current_database())")[0][0])


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": 0.0, "p90": 0.0, "max": 0.0, "n": 0}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {"median": round(statistics.median(ordered), 3), "p90": round(p90, 3),
            "max": round(ordered[-1], 3), "n": len(ordered)}  # fmt: skip


def lay_out_studies(landing: Path, studies: int, days: int, *, slices: int, size: int) -> list[str]:
    """``studies`` CT studies, StudyDates round-robin over ``days`` days from 2023-03-01;
    returns their StudyInstanceUIDs."""
    from pydicom import dcmread

    from dcmtier.sample import write_ct_series

    uids = []
    for n in range(studies):
        day = (date(2023, 3, 1) + timedelta(days=n % days)).strftime("%Y%m%d")
        files = write_ct_series(landing / f"s{n:05d}", slices=slices, rows=size, columns=size,
                                seed=1000 + n, study_date=day)  # fmt: skip
        uids.append(str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID))
    return uids


def run_backfill(
    work: Path,
    *,
    studies: int,
    days: int,
    slices: int,
    size: int,
    redis_db: int,
    echo: Callable[[str], None],
    timeout: float = 3600,
) -> dict[str, Any]:
    """One backfill of ``studies`` studies x 2 tiers over ``days`` days; its figures."""
    landing = work / "landing"
    made = time.perf_counter()
    expected = lay_out_studies(landing, studies, days, slices=slices, size=size)
    echo(f"{studies} studies of {slices} x {size}x{size} laid out in "
         f"{time.perf_counter() - made:.1f} s")  # fmt: skip
    with _deployment(work, landing, redis_db, echo) as (stack, metadata_url, catalogue_url):
        conf = {"select_by": "study_date", "landing": str(landing), "tiers": list(TIERS),
                "settle_seconds": 0}  # fmt: skip
        result = _backfill(stack, metadata_url, catalogue_url, conf, first=date(2023, 3, 1),
                           days=days, expected=expected, tiers=TIERS, echo=echo,
                           timeout=timeout)  # fmt: skip
    result.update({"slices": slices, "size": size})
    return result


def run_mix(
    work: Path,
    *,
    studies: int | Sequence[int],
    days: int,
    unit_seconds: Sequence[float],
    redis_db: int,
    echo: Callable[[str], None],
    timeout: float = 3600,
) -> dict[str, Any]:
    """One backfill of the hospital mix x 13 tiers per ``unit_seconds`` value, on one
    deployment, each row its own studies (``studies`` a row, or one count per row) and days
    (the later rows' cost model is fitted from the earlier rows' attempts, as a deployment's
    would be); the rows' figures."""
    from dcmtier.bench.mix import lay_out_mix, projection, row_line, share_figures, work_seconds
    from dcmtier.tiers import DEFAULT_TIERS

    counts = [studies] * len(unit_seconds) if isinstance(studies, int) else list(studies)
    if len(counts) == 1:
        counts *= len(unit_seconds)
    if len(counts) != len(unit_seconds):
        raise ValueError(f"{len(counts)} study counts for {len(unit_seconds)} unit_seconds rows")
    rows: dict[str, Any] = {}
    deployment = _deployment(work, work / "landing", redis_db, echo)
    with deployment as (stack, metadata_url, catalogue_url):
        for n, seconds in enumerate(unit_seconds):
            landing = work / "landing" / f"row{n}"
            first = date(2023, 3, 1) + timedelta(days=40 * n)
            expected = lay_out_mix(landing, counts[n], first, days, seed=5000 + 1000 * n)
            conf = {"select_by": "study_date", "landing": str(landing), "settle_seconds": 0,
                    "tiers": list(DEFAULT_TIERS), "unit_seconds": seconds}  # fmt: skip
            result = _backfill(stack, metadata_url, catalogue_url, conf, first=first, days=days,
                               expected=expected, tiers=tuple(DEFAULT_TIERS), echo=echo,
                               timeout=timeout)  # fmt: skip
            work_s = work_seconds(metadata_url, catalogue_url, result["run_ids"], expected)
            result["share"] = share_figures(result, work_s)
            result["unit_seconds"] = seconds
            echo(row_line(seconds, result))
            rows[f"unit_seconds={seconds:g}"] = result
    projected = projection(list(rows.values()))
    if projected:
        echo(f"1M studies in runs of 1,000 at unit_seconds={unit_seconds[-1]:g}: "
             f"{projected['task_instances']:,} task instances, metadata "
             f"{projected['metadata_bytes'] / 1e9:.1f} GB before cleaning "
             f"({projected['metadata_per_task_instance_bytes'] / 1e3:.1f} kB a task instance, "
             f"{projected['metadata_per_run_bytes'] / 1e3:.0f} kB a run)")  # fmt: skip
    return {"mix": "hospital", "studies_per_row": counts, "days": days, "rows": rows,
            "projection": projected}  # fmt: skip


@contextmanager
def _deployment(
    work: Path, landing: Path, redis_db: int, echo: Callable[[str], None]
) -> Iterator[tuple[Any, str, str]]:
    """The integration tests' deployment on fresh metadata and catalogue databases, the
    packages asset's example consumer paused; everything dropped afterwards."""
    from dcmtier.bench.airflow_stack import AirflowStack, create_database, drop_database, wait_for
    from dcmtier.catalogue import Catalogue

    suffix = uuid.uuid4().hex[:8]
    metadata_db, catalogue_db = f"dcmtier_bench_airflow_{suffix}", f"dcmtier_bench_cat_{suffix}"
    output = work / "output"
    metadata_url = create_database(metadata_db)
    stack: AirflowStack | None = None
    try:
        catalogue_url = create_database(catalogue_db)
        Catalogue.upgrade(catalogue_url)
        stack = AirflowStack.configure(
            work / "airflow", metadata_url, redis_db=redis_db,
            extra={"AIRFLOW_CONN_DCMTIER_CATALOGUE": catalogue_url,
                   "DCMTIER_LANDING": str(landing), "DCMTIER_DATA_DIR": str(output),
                   "DCMTIER_TASK_RETRIES": "0"},
        )  # fmt: skip
        started = time.perf_counter()
        stack.start()
        wanted = {DAG_ID, *PAUSED}
        wait_for(lambda: wanted <= {r[0] for r in query(metadata_url, "SELECT dag_id FROM dag")},
                 timeout=300, what="the DAGs to be parsed")  # fmt: skip
        for other in PAUSED:
            stack.cli("dags", "pause", other)
        echo(f"Airflow up and the DAGs parsed in {time.perf_counter() - started:.1f} s")
        yield stack, metadata_url, catalogue_url
    finally:
        if stack is not None:
            stack.stop()
        drop_database(metadata_db)
        drop_database(catalogue_db)
        shutil.rmtree(output, ignore_errors=True)


def _backfill(
    stack: Any,
    metadata_url: str,
    catalogue_url: str,
    conf: dict[str, Any],
    *,
    first: date,
    days: int,
    expected: list[str],
    tiers: Sequence[str],
    echo: Callable[[str], None],
    timeout: float,
) -> dict[str, Any]:
    """One ``study_date`` backfill over ``days`` days from ``first``, waited for; its figures."""
    from dcmtier.bench.airflow_stack import wait_for

    # Airflow allows one running backfill per DAG, and the scheduler marks one completed a few
    # seconds after its last run ends: the previous row's backfill must be marked first
    wait_for(
        lambda: not query(metadata_url, "SELECT id FROM backfill WHERE dag_id = :d "
                          "AND completed_at IS NULL", d=DAG_ID) or None,
        timeout=timeout, what="the previous backfill to be marked completed", every=2,
    )  # fmt: skip
    size_before, tables_before = _database_size(metadata_url), _table_sizes(metadata_url)
    last = first + timedelta(days=days - 1)
    began = datetime.now(UTC)
    stack.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", first.isoformat(),
              "--to-date", last.isoformat(), "--dag-run-conf", json.dumps(conf))  # fmt: skip

    def ended() -> list[Any] | None:
        runs = query(metadata_url, "SELECT run_id, state, start_date, end_date FROM dag_run "
                      "WHERE dag_id = :d AND run_type = 'backfill' AND logical_date >= :f "
                      "AND logical_date < :l", d=DAG_ID, f=first,
                      l=last + timedelta(days=1))  # fmt: skip
        over = [r for r in runs if r[1] in ("success", "failed")]
        return runs if len(runs) >= days and len(over) == len(runs) else None

    try:
        runs = wait_for(ended, timeout=timeout, what="the backfill", every=5)
    except TimeoutError as exc:
        logs = "\n".join(f"--- {n}\n{stack.log_tail(n, 30)}" for n in stack.processes)
        raise RuntimeError(f"{exc}\n{logs}") from None
    wall = (max(r[3] for r in runs) - began).total_seconds()
    echo(f"backfill of {len(runs)} runs ended in {wall:.1f} s: "
         f"{sorted(str(r[1]) for r in runs)}")  # fmt: skip
    size_after, tables_after = _database_size(metadata_url), _table_sizes(metadata_url)
    run_ids = [str(r[0]) for r in runs]
    tis, others, jobs, claims = _read_out(metadata_url, catalogue_url, began, run_ids, expected)
    studies = len(expected)
    result = _figures(
        studies=studies, days=days, runs=runs, tis=tis, wall=wall, others=others,
        sizes=(size_before, size_after), tables=(tables_before, tables_after), jobs=jobs,
        claims=claims, expected=expected, tiers=tiers,
    )  # fmt: skip
    result["run_ids"] = run_ids
    echo(
        f"{studies} studies x {len(tiers)} tiers: wall {wall:.0f} s, {len(tis)} task instances, "
        f"busy {result['busy_s']:.0f} s, overhead {result['overhead_per_ti_s']:.2f} slot-s "
        f"per instance, schedulable->start median "
        f"{result['schedulable_to_start_s']['median']:.2f} s, metadata "
        f"+{(size_after - size_before) / 1e6:.1f} MB "
        f"({result['metadata']['growth_per_study_bytes'] / 1e3:.1f} kB a study), "
        f"{result['pairs_done_once_ok']}/{result['pairs_expected']} pairs done once"
    )
    return result


def _read_out(
    metadata_url: str, catalogue_url: str, began: datetime, run_ids: list[str], studies: list[str]
) -> tuple[Any, ...]:
    """The backfill's task instances, other task instances that started since ``began``, the
    catalogue's jobs per study x tier and the claims left."""
    tis = query(metadata_url, "SELECT task_id, state, duration, scheduled_dttm, queued_dttm, "
                 "start_date FROM task_instance WHERE dag_id = :d AND run_id = ANY(:r)",
                 d=DAG_ID, r=run_ids)  # fmt: skip
    # anything else that ran on the workers meanwhile (the DAG's own scheduled run of today)
    others = query(metadata_url, "SELECT dag_id, task_id, duration FROM task_instance "
                    "WHERE start_date >= :b AND NOT (dag_id = :d AND run_id = ANY(:r))",
                    b=began, d=DAG_ID, r=run_ids)  # fmt: skip
    jobs = query(catalogue_url, "SELECT study_uid, tier, count(*), min(status) FROM jobs "
                  "WHERE study_uid = ANY(:s) GROUP BY study_uid, tier", s=studies)  # fmt: skip
    claims = int(query(catalogue_url, "SELECT count(*) FROM claims")[0][0])
    return tis, others, jobs, claims


def _figures(
    *,
    studies: int,
    days: int,
    runs: list[Any],
    tis: list[Any],
    wall: float,
    others: list[Any],
    sizes: tuple[int, int],
    tables: tuple[dict[str, int], dict[str, int]],
    jobs: list[Any],
    claims: int,
    expected: list[str],
    tiers: Sequence[str],
) -> dict[str, Any]:
    """The report of one backfill from what was read out of the two databases."""
    (size_before, size_after), (tables_before, tables_after) = sizes, tables
    ran = [t for t in tis if t[5] is not None]  # not the skipped (empty expansions)
    busy = sum(float(t[2] or 0) for t in ran)
    other_busy = sum(float(t[2] or 0) for t in others)
    per_task: dict[str, dict[str, int]] = {}  # task_id -> state -> instances
    for t in tis:
        states = per_task.setdefault(str(t[0]), {})
        states[str(t[1])] = states.get(str(t[1]), 0) + 1
    done = {(str(j[0]), str(j[1])): (int(j[2]), str(j[3])) for j in jobs}
    pairs = {(uid, tier) for uid in expected for tier in tiers}
    growth = {name: tables_after.get(name, 0) - tables_before.get(name, 0) for name in tables_after}
    result: dict[str, Any] = {
        "studies": studies, "tiers": list(tiers), "days": days,
        "runs": len(runs), "run_states": sorted(str(r[1]) for r in runs),
        "task_instances": len(tis), "task_instances_run": len(ran), "per_task": per_task,
        "ti_states": sorted({str(t[1]) for t in tis}),
        "wall_s": round(wall, 1), "busy_s": round(busy, 1), "slots": SLOTS,
        "other_task_instances": len(others), "other_busy_s": round(other_busy, 1),
        "overhead_per_ti_s": round((wall * SLOTS - busy - other_busy) / max(1, len(ran)), 3),
        "task_duration_s": _spread([float(t[2] or 0) for t in ran]),
        "schedulable_to_start_s": _spread(
            [(t[5] - t[3]).total_seconds() for t in tis if t[3] and t[5]]),
        "scheduled_to_queued_s": _spread(
            [(t[4] - t[3]).total_seconds() for t in tis if t[3] and t[4]]),
        "queued_to_start_s": _spread(
            [(t[5] - t[4]).total_seconds() for t in tis if t[4] and t[5]]),
        "metadata": {
            "before_bytes": size_before, "after_bytes": size_after,
            "growth_per_study_bytes": round((size_after - size_before) / studies),
            "tables_grown_bytes": dict(sorted(growth.items(), key=lambda kv: -kv[1])[:8]),
        },
        "pairs_done_once_ok": sum(done.get(p) == (1, "ok") for p in pairs),
        "pairs_expected": len(pairs),
        "pairs_done_twice": sum(1 for v in done.values() if v[0] > 1),
        "claims_left": claims,
    }  # fmt: skip
    return result
