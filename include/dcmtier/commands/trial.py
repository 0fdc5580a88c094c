"""The estimate's sample compressed in a scratch folder: what each sampled study measures.

Each sampled study goes through ``work.study.process_study`` (the per-study entry point of
``dcmtier process`` and the DAG) with no catalogue, into a temporary output root removed
afterwards: nothing is published or recorded. Two passes per study:

- every tier at once on ``--slots`` processes, recorded in a throwaway SQLite catalogue in the
  scratch folder, as ``dcmtier process --jobs K`` runs it (its attempts, sources and packages
  written too): the study's wall time (the process forecast) and its stored bytes per tier;
- each tier alone on one process, as a DAG tier task makes it: the tier's CPU seconds (this
  process's and its children's) and wall seconds (what work units' cost model is fitted on).

The sampled files' headers are read once more, timed, for the header pass ``dcmtier process``
makes before its first study.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dcmtier.catalogue.landing import IndexedFile
from dcmtier.discovery.landing import location, stage
from dcmtier.discovery.sampling import StudyRecord
from dcmtier.records import LAYERED, Study
from dcmtier.tiers import Tier, layered_tiers


@dataclass
class Measured:
    """One sampled study's measurements."""

    wall_s: float = 0.0  # every tier at once, on the slots
    stored: dict[str, int] = field(default_factory=dict)  # bytes per tier
    cpu_s: dict[str, float] = field(default_factory=dict)  # per tier alone
    tier_wall_s: dict[str, float] = field(default_factory=dict)  # per tier alone
    statuses: dict[str, str] = field(default_factory=dict)


@dataclass
class Trial:
    studies: dict[str, Measured] = field(default_factory=dict)
    header_files: int = 0
    header_s: float = 0.0
    seconds: float = 0.0


def _cpu() -> float:
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _study(record: StudyRecord, files: Sequence[IndexedFile], folder: Path) -> Study:
    uris = [f.uri for f in files]
    paths = stage(uris, folder)
    return Study(
        record.uid, tuple(paths),
        {p: f.sop_uid for p, f in zip(paths, files, strict=True)},
        uris={p: location(u) for p, u in zip(paths, uris, strict=True)},
        keys={p: f.file_key for p, f in zip(paths, files, strict=True)},
    )  # fmt: skip


def _headers(study: Study) -> float:
    from pydicom import dcmread

    start = time.perf_counter()
    for path in study.files:
        dcmread(path, stop_before_pixels=True)
    return time.perf_counter() - start


def run_trial(
    sample: Sequence[StudyRecord], files: dict[str, list[IndexedFile]], tiers: Sequence[Tier],
    slots: int, *, quiet: bool = False,
) -> Trial:  # fmt: skip
    """Measure every study of ``sample`` (module docstring); progress on stderr."""
    from dcmtier.catalogue import Catalogue
    from dcmtier.work.config import RunConfig
    from dcmtier.work.layout import Layout
    from dcmtier.work.study import process_study

    trial = Trial()
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="dcmtier-estimate-"))
    rated = tuple(layered_tiers(tiers))
    url = f"sqlite:///{scratch / 'catalogue.db'}"
    Catalogue.upgrade(url)
    catalogue = Catalogue.connect(url)
    try:
        for number, record in enumerate(sample, start=1):
            study = _study(record, files[record.uid], scratch / "staging" / str(number))
            trial.header_files += len(study.files)
            trial.header_s += _headers(study)
            got = Measured()
            root = scratch / f"all-{number}"
            run = RunConfig(Layout(root), f"estimate-{number}", jobs=slots,
                            strategy=LAYERED, catalogue=catalogue)  # fmt: skip
            t0 = time.perf_counter()
            for result in process_study(study, tiers, run):
                got.stored[result.tier] = result.file_bytes_out
                got.statuses[result.tier] = result.status
            got.wall_s = time.perf_counter() - t0
            shutil.rmtree(root, ignore_errors=True)
            root = scratch / f"tier-{number}"
            run = RunConfig(Layout(root), f"estimate-{number}-t", jobs=1, strategy=LAYERED,
                            layer_tiers=rated)  # fmt: skip
            for tier in tiers:
                t0, c0 = time.perf_counter(), _cpu()
                process_study(study, [tier], run)
                got.cpu_s[tier.name] = _cpu() - c0
                got.tier_wall_s[tier.name] = time.perf_counter() - t0
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(scratch / "staging" / str(number), ignore_errors=True)
            trial.studies[record.uid] = got
            if not quiet:
                print(
                    f"estimate: sample {number}/{len(sample)} {record.stratum} "
                    f"{record.instances} files {record.bytes / 1e6:.2f} MB: {got.wall_s:.2f} s",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
    finally:
        catalogue.close()
        shutil.rmtree(scratch, ignore_errors=True)
    trial.seconds = time.perf_counter() - started
    return trial
