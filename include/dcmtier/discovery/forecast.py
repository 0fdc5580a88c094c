"""What a backfill of the whole landing area would cost in time and Airflow metadata, from the
estimate's per-study measurements.

- ``dcmtier process --jobs K`` runs the studies one after another, each study's instances on
  K processes: its wall time is the sum over studies of what the sample measured per study at
  ``--jobs K`` (ratio-estimated per stratum on source bytes), plus the header read of every
  file before the first study.
- The DAG runs ``ceil(studies / max_studies_per_run)`` runs. Each has four one-off tasks
  (``discover``, ``units``, ``tiers``, ``summary``) and, per work unit, one ``encode`` and one
  ``compress`` per tier (``dcmtier.discovery.units``: studies packed by the estimate's
  per-study cost model). On K worker slots its wall time is (the tier tasks' work + task
  instances x ``TASK_SLOT_S``) / K, the work being what the sample measured of each tier made
  alone on one process (wall seconds: on a loaded host they exceed the CPU seconds, as the
  tasks' would): every task instance costs its slot about 5 s beyond its
  work (3.3 s of task process: start, imports, catalogue, XCom; 1.7 s of scheduling and
  hand-over around it), measured on a 300-study x 2-tier backfill on PostgreSQL
  (docs/operators/archive-scale.md). Each task instance adds about 9.5 kB to the metadata
  database (same measurement: 8.7 MB for 912 task instances; ``xcom`` half of it) until
  ``airflow db clean``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dcmtier.discovery.sampling import StudyRecord
from dcmtier.discovery.units import UNIT_SECONDS, Attempt, CostModel, StudySize, fit, pack

TASK_SLOT_S = 5.0  # slot-seconds a task instance costs beyond its work (3.3 + 1.7, measured)
METADATA_BYTES_PER_TASK = 9_500  # metadata database growth a task instance (measured)
RUN_TASKS = 4  # discover, units, tiers, summary
STUDIES_PER_RUN = 1000  # dcmtier.discovery.plan.MAX_STUDIES_PER_RUN


@dataclass(frozen=True)
class DagForecast:
    runs: int
    units: int
    task_instances: int
    metadata_bytes: int
    wall_s: float
    model: CostModel


def study_model(attempts: Sequence[Attempt]) -> CostModel:
    """The per-study cost model of one tier task, fitted from the sample's study x tier
    measurements when there are enough (``units.fit``), else the units' defaults."""
    return fit(attempts)


def dag_forecast(
    population: Sequence[StudyRecord], tiers: int, work_s: float, slots: int,
    model: CostModel, *, unit_seconds: float = UNIT_SECONDS,
    studies_per_run: int = STUDIES_PER_RUN,
) -> DagForecast:  # fmt: skip
    """Runs, units, task instances, metadata and wall time of the DAG over ``population``
    (in StudyDate order, as a study-date backfill takes them), see the module docstring."""
    ordered = sorted(population, key=lambda s: (s.study_date is None, s.study_date, s.uid))
    runs = max(1, math.ceil(len(ordered) / studies_per_run)) if ordered else 0
    units = 0
    for start in range(0, len(ordered), studies_per_run):
        chunk = ordered[start : start + studies_per_run]
        sizes = [StudySize(s.uid, s.instances, s.bytes) for s in chunk]
        units += len(pack(sizes, unit_seconds, model))
    instances = runs * RUN_TASKS + units * (1 + tiers)
    wall = (work_s + instances * TASK_SLOT_S) / max(1, slots)
    return DagForecast(runs, units, instances, instances * METADATA_BYTES_PER_TASK, wall, model)


def header_seconds(files: int, measured: Mapping[str, float]) -> float:
    """Seconds to read ``files`` headers at the sample's measured rate (``measured``: the
    ``files`` and ``seconds`` of the sample's own header reads)."""
    per_file = measured.get("seconds", 0.0) / max(1.0, measured.get("files", 0.0))
    return files * per_file
