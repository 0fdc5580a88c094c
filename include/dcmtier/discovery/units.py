"""Work units: a run's studies packed into groups of about ``unit_seconds`` of estimated work.

Airflow pays a fixed price per task instance (scheduling, a worker process, its imports, its
metadata rows) whatever the instance does. A unit runs many small studies one after another in
one ``compress`` instance per tier, so that price is paid once per minutes of work instead of
once per study x tier. Packing is sequential in the plan's order (oldest first): a unit takes
studies until the next one would take it past the target; a study is never split, and one whose
estimate alone exceeds the target is a unit of its own. ``unit_seconds = 0`` keeps one study a
unit. The same studies, sizes and model always give the same units.

Large studies, those holding a file above the run's ``large_instance_mb``, are packed apart by
the same rule into units of large studies only, flagged ``large`` and numbered after the others:
the DAG runs them in tasks of their own (``encode_large``, ``compress_large``) whose pool is
sized for the memory a large instance needs (docs/operators/memory.md). A task's pool is fixed
per task, not per mapped instance, so a unit is large or not as a whole.

The estimate is of one tier task's work for a study: ``CostModel.seconds``, a fixed cost per
study (staging, catalogue writes, packaging: what a tier costs even for one tiny image) plus a
cost per stored byte and per instance. ``fit`` derives it from the durations of the attempts
the catalogue recorded; with too few of them, the defaults below hold. The fixed part is
overestimated on purpose (the median plus its median absolute deviation): a unit that runs a
little short costs a little orchestration, one that runs long delays a run's end.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

UNIT_SECONDS = 120
MIN_HISTORY = 50  # attempts needed before the recorded durations replace the defaults


@dataclass(frozen=True)
class StudySize:
    """What the landing index knows of a study before any work: its files and their bytes."""

    uid: str
    instances: int
    bytes: int
    largest: int = 0  # bytes of its largest file

    def is_large(self, threshold: int) -> bool:
        """True when a file of the study is larger than ``threshold`` bytes (0: never)."""
        return 0 < threshold < self.largest


@dataclass(frozen=True)
class CostModel:
    """Seconds of one tier task's work on a study (see the module docstring).

    The defaults come from the attempts of one ``dag.test`` run of the hospital mix
    (`dcmtier.bench.mix`) x 13 tiers, one study a unit, on the 2-core development VM at load
    average 10-11 (docs/operators/work-units.md): median attempt of a one-image 256 x 256 radiograph
    (132 kB) 0.16 s (max 0.34 s), a 20-slice 128 x 128 CT (683 kB) 0.80 s (max 1.41 s), a
    12-slice MR 0.57 s. A three-term least squares over the 130 attempts gave 0.032 s an
    instance; with that held, ``fit`` gives 0.17 s + 0.13 s a MB. The fixed part is raised to
    0.5 s for what a unit spends on a study outside its attempt (manifest, staging, catalogue
    look-ups) and to overestimate.
    """

    study_s: float = 0.5
    byte_s: float = 1.3e-7  # 0.13 s a MB
    instance_s: float = 0.032
    fitted_from: int = 0  # attempts the model was fitted from; 0: the defaults

    def as_dict(self) -> dict[str, float]:
        return {"study_s": self.study_s, "byte_s": self.byte_s, "instance_s": self.instance_s,
                "fitted_from": self.fitted_from}  # fmt: skip

    def seconds(self, size: StudySize) -> float:
        return self.study_s + self.byte_s * size.bytes + self.instance_s * size.instances


@dataclass(frozen=True)
class Unit:
    """One unit of a run: its id (``u0042``), its studies in plan order, its estimate, and
    whether they are large studies (run in the large instances' pool)."""

    id: str
    studies: tuple[str, ...]
    estimate_s: float
    large: bool = False

    def for_xcom(self) -> dict[str, object]:
        """What the DAG maps over: the id and the count (and ``large``, for a large unit),
        never the studies."""
        body: dict[str, object] = {"id": self.id, "studies": len(self.studies)}
        if self.large:
            body["large"] = True
        return body


def unit_id(number: int) -> str:
    return f"u{number:04d}"


def pack(
    sizes: Sequence[StudySize], target_s: float, model: CostModel, *, large_bytes: int = 0
) -> list[Unit]:
    """Pack ``sizes`` (in plan order) into units of about ``target_s`` seconds each.

    ``target_s <= 0``: one study a unit. Never splits a study; a study estimated over the
    target is a unit alone; a unit closes when the next study would take it past the target.
    ``large_bytes > 0``: the studies holding a file larger than that are packed apart, into
    units flagged ``large`` that follow the others.
    """
    large = [s for s in sizes if s.is_large(large_bytes)]
    small = [s for s in sizes if not s.is_large(large_bytes)]
    units = _pack(small, target_s, model, [], large=False)
    return _pack(large, target_s, model, units, large=True)


def _pack(
    sizes: Sequence[StudySize], target_s: float, model: CostModel, units: list[Unit], *, large: bool
) -> list[Unit]:
    """``units`` followed by the units of ``sizes`` (numbered on from them)."""
    current: list[str] = []
    total = 0.0

    def close() -> None:
        nonlocal current, total
        if current:
            units.append(Unit(unit_id(len(units)), tuple(current), round(total, 3), large))
        current, total = [], 0.0

    for size in sizes:
        cost = model.seconds(size)
        if current and (target_s <= 0 or total + cost > target_s):
            close()
        current.append(size.uid)
        total += cost
    close()
    return units


@dataclass(frozen=True)
class Attempt:
    """One finished attempt of the catalogue: its study's size and how long it took."""

    instances: int
    bytes: int
    seconds: float


def fit(attempts: Iterable[Attempt], default: CostModel | None = None) -> CostModel:
    """The cost model of the recorded attempts; ``default`` with fewer than ``MIN_HISTORY``.

    The per-instance cost stays the default's (instances and bytes rise together, so a fit of
    both is unstable). The per-byte cost is the least-squares slope of the rest on the stored
    bytes when the history's sizes differ enough to show one (the largest at least twice the
    smallest, three sizes or more), else the default's; a negative slope falls back to it too.
    The fixed part is the median of what remains plus its median absolute deviation (an
    overestimate), never below the default's: the history can only say work costs more.
    """
    base = default or CostModel()
    rows = [a for a in attempts if a.seconds >= 0]
    if len(rows) < MIN_HISTORY:
        return base
    xs = [float(a.bytes) for a in rows]
    ys = [a.seconds - base.instance_s * a.instances for a in rows]
    slope = base.byte_s
    if len(set(xs)) >= 3 and max(xs) >= 2 * max(1.0, min(xs)):
        mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        fitted = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
        slope = fitted if fitted >= 0 else base.byte_s
    rest = [y - slope * x for x, y in zip(xs, ys, strict=True)]
    middle = statistics.median(rest)
    deviation = statistics.median(abs(r - middle) for r in rest)
    fixed = max(base.study_s, middle + deviation)
    return CostModel(round(fixed, 4), slope, base.instance_s, fitted_from=len(rows))
