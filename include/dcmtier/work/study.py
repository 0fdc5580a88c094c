"""The unit of work: for one study and each tier, compress, verify, measure, write the
quality partition and the package, and quarantine what failed.

Layout under the output root: ``derived/``, ``quality/``, ``packages/``, ``quarantine/``.
Everything written is keyed by UIDs and tier, so running it again replaces rather than adds.

A study x tier's output is the whole study as known (``work.carry``): members of its existing
package that this attempt did not process are carried over, re-verified by hash. Files that
repeat a SOP Instance UID are made once or fail as a conflict (``work.duplicates``). One bad
instance fails alone; the study x tier is then ``partial``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from dcmtier.outputs import uid_name
from dcmtier.owner import checkpoint, remove_dead_temps
from dcmtier.records import Study, StudyTierResult, TierResult, name_by_key
from dcmtier.tiers import Tier
from dcmtier.work import interrupt
from dcmtier.work.batch import run_batch
from dcmtier.work.compress import CompressConfig
from dcmtier.work.config import RunConfig
from dcmtier.work.duplicates import split_duplicates
from dcmtier.work.finish import content_time, finish_tier
from dcmtier.work.layout import Layout
from dcmtier.work.quarantine import quarantine_failed
from dcmtier.work.sources import SourceIndex, known_sources

if TYPE_CHECKING:  # the catalogue (SQLAlchemy) loads only when a caller passes one
    from dcmtier.catalogue import Catalogue
    from dcmtier.catalogue.holds import Holds

log = logging.getLogger(__name__)
HOLD_POLL_S = 0.2  # how often a run waiting for another's study x tier looks again
HOLD_LOG_EVERY_S = 30.0
ERROR_CHARS = 500  # a failed attempt's error in the catalogue: one line, this long at most


class Watcher(Protocol):
    """What a caller hears while ``process_study`` runs (the command line's progress display)."""

    def instance_done(self, source_bytes: int) -> None: ...

    def tier_done(self, result: StudyTierResult) -> None: ...


def process_study(
    study: Study,
    tiers: Sequence[Tier],
    run: RunConfig,
    *,
    sources: SourceIndex | None = None,
    watcher: Watcher | None = None,
) -> list[StudyTierResult]:
    """Run one study through every tier of ``run``; one result per tier, never raising for
    bad input.

    With the ``layered`` strategy, the J2K rate tiers (of ``tiers``, and of the run's
    ``layer_tiers`` when a task makes one tier of a wider run) are cut from one layered encode
    per frame, kept under ``<output>/cache/layered`` so that the tier tasks of a study share it.

    With the run's ``catalogue``, the study's sources are recorded once and each tier is an
    attempt (``start_job`` ... ``finish_job``) under its ``context``, owned by this process and
    leased while it works. Each study x tier is held exclusively (`dcmtier.catalogue.holds`):
    a tier another run holds is waited for, and not made again when that run finished it
    after ``since`` (default: now) from the same inputs. An unexpected exception marks the
    unfinished attempts failed (``interrupted`` for SIGINT and SIGTERM) and is raised again.
    Temporary files that dead processes left in the study's folders are removed first.

    With the run's ``publisher`` (an output root on object storage), each finished tier is
    published to the store before the catalogue records it (``work.publish``); then its
    objects the result no longer names (outputs the gate now rejects) are deleted from the
    store and its files removed from the scratch folder.

    With ``sources`` (a DAG tier task: the study's sources as its encode task read them,
    ``work.sources``), the sources it holds are neither read nor hashed again. A ``watcher``
    hears of each instance compressed into every tier and of each tier finished.
    """
    layer_tiers = tuple({t.name: t for t in (*run.layer_tiers, *tiers)}.values())
    job = _StudyJob(study, dataclasses.replace(run, layer_tiers=layer_tiers), sources, watcher)
    if run.catalogue is None:
        _sweep(run.layout, study.uid, tiers)
        return _attempt(job, tiers)
    return _attempt_held(job, tiers, run.catalogue)


@dataclass(frozen=True)
class _StudyJob:
    """One study under a run's configuration, with what the caller holds for that study."""

    study: Study
    run: RunConfig
    sources: SourceIndex | None
    watcher: Watcher | None


def _attempt_held(
    job: _StudyJob, tiers: Sequence[Tier], catalogue: Catalogue
) -> list[StudyTierResult]:
    """Each tier held exclusively and recorded in ``catalogue``; tiers made meanwhile by
    another run from the same inputs are taken as they are."""
    study = job.study
    catalogue.reap([study.uid])
    since = job.run.since or datetime.now(UTC)
    made: dict[str, StudyTierResult] = {}
    holds = catalogue.holds()
    try:
        pending = list(tiers)
        while pending:
            held = _hold_some(holds, study.uid, pending)
            pending = [t for t in pending if t not in held]
            try:
                _sweep(job.run.layout, study.uid, held)
                inputs = {t.name: job.run.inputs(study, t) for t in held}
                done = catalogue.done_since(study.uid, inputs, since)
                for name, result in done.items():
                    log.info("study %s tier %s: made meanwhile by %s", study.uid, name,
                             result.done_by)  # fmt: skip
                todo = [t for t in held if t.name not in done]
                made.update(done)
                made.update({r.tier: r for r in _attempt(job, todo, holds=holds)})
            finally:
                for tier in held:
                    holds.release((study.uid, tier.name))
    finally:
        holds.close()
    return [made[t.name] for t in tiers]


def _hold_some(holds: Holds, study_uid: str, tiers: Sequence[Tier]) -> list[Tier]:
    """Hold every free tier of ``tiers`` now; if none is free, wait until one is.

    A holder that dies releases its holds with it, so the wait ends when the other run does.
    """
    next_log = time.monotonic()
    while True:
        held = [t for t in tiers if holds.try_hold((study_uid, t.name))]
        if held:
            return held
        if time.monotonic() >= next_log:
            log.info(
                "study %s: waiting for another run to finish %s",
                study_uid, ", ".join(t.name for t in tiers),
            )  # fmt: skip
            next_log = time.monotonic() + HOLD_LOG_EVERY_S
        time.sleep(HOLD_POLL_S)


def _sweep(layout: Layout, study_uid: str, tiers: Sequence[Tier]) -> None:
    """Remove what dead processes left half-written in this study's folders."""
    name = uid_name(study_uid)
    folders = [(layout.packages / name, False), (layout.layer_cache / name, False)]
    for tier in tiers:
        folders.append((layout.derived / tier.name / name, True))  # series folders below
        folders.append((layout.quality / f"tier={tier.name}", False))  # partitions' temp dirs
    for folder, recursive in folders:
        for path in remove_dead_temps(folder, recursive=recursive):
            log.info("removed %s, left by a process that is gone", path.name)


def _attempt(
    job: _StudyJob, tiers: Sequence[Tier], *, holds: Holds | None = None
) -> list[StudyTierResult]:
    """Make ``tiers`` for the study, recording each as an attempt when the run has a
    catalogue; the unfinished attempts end failed (or interrupted) on an error."""
    if not tiers:
        return []
    study, run, catalogue = job.study, job.run, job.run.catalogue
    jobs_of = _start_jobs(job, tiers)
    lease: AbstractContextManager[object] = nullcontext()
    if catalogue is not None and holds is not None:
        from dcmtier.catalogue.lease import Lease  # the catalogue package loads SQLAlchemy

        lease = Lease(catalogue, list(jobs_of.values()), holds)
    done: list[StudyTierResult] = []
    try:
        with lease:
            if run.publisher is not None:
                run.publisher.fetch_known(study.uid, [t.name for t in tiers])
            by_tier = _compress(job, tiers)
            created_at = content_time(study.files)
            for tier in tiers:
                result = finish_tier(
                    study, tier, results=by_tier[tier.name], layout=run.layout,
                    run_id=run.run_id, created_at=created_at,
                )  # fmt: skip
                _commit(job, result, lease, jobs_of)
                done.append(result)
                if job.watcher is not None:
                    job.watcher.tier_done(result)
                checkpoint("between-tiers")
    except BaseException as exc:
        if catalogue is not None:
            unfinished = [jobs_of[t.name] for t in tiers[len(done) :]]
            _end_jobs(catalogue, unfinished, exc, study)
        raise
    return done


def _commit(
    job: _StudyJob, result: StudyTierResult, lease: object, jobs_of: dict[str, int]
) -> None:
    """Publish a finished tier, record it in the catalogue (the commit point), then prune
    from the store what it no longer names."""
    run, pair = job.run, (job.study.uid, result.tier)
    published = []
    if run.publisher is not None:
        published = run.publisher.publish(result)
    if run.catalogue is not None:
        _check_hold(lease, pair)
        run.catalogue.finish_job(jobs_of[result.tier], result)  # the commit point
    if run.publisher is not None:  # after the commit point
        run.publisher.prune(result, published)
        run.publisher.clear(*pair)


def _compress(job: _StudyJob, tiers: Sequence[Tier]) -> dict[str, list[TierResult]]:
    """Every file into every tier, but each SOP Instance UID once (``work.duplicates``):
    a repeat is ``duplicate``, files that conflict are ``failed`` and quarantined."""
    study, layout = job.study, job.run.layout
    made, left_out = split_duplicates(study)
    by_tier = _compress_study(
        dataclasses.replace(study, files=made), tiers, layout, jobs=job.run.jobs,
        config=job.run.compress_config(job.sources), watcher=job.watcher,
    )  # fmt: skip
    for item in left_out:
        results = item.results(study, list(tiers))
        quarantine_failed(study, results, layout)
        for left in results:
            by_tier[left.tier].append(left)
    return by_tier


def _start_jobs(job: _StudyJob, tiers: Sequence[Tier]) -> dict[str, int]:
    """Record the study and open one attempt per tier; nothing without a catalogue."""
    run = job.run
    if run.catalogue is None:
        return {}
    context = run.context
    if context is None:
        from dcmtier.catalogue import JobContext  # SQLAlchemy only when a catalogue is used

        context = JobContext.cli(run.run_id)
    run.catalogue.record_study(job.study, known=known_sources(job.sources))
    catalogue = run.catalogue
    return {
        tier.name: catalogue.start_job(
            job.study.uid,
            tier,
            context,
            {**run.parameters(tier), "inputs": run.inputs(job.study, tier)},
        )
        for tier in tiers
    }


def _compress_study(
    study: Study,
    tiers: Sequence[Tier],
    layout: Layout,
    *,
    jobs: int,
    config: CompressConfig,
    watcher: Watcher | None,
) -> dict[str, list[TierResult]]:
    by_tier: dict[str, list[TierResult]] = {t.name: [] for t in tiers}
    progress = Progress(study.uid, len(study.files), [t.name for t in tiers])
    # closed on the way out of an error or a signal: the workers stop with it
    with closing(run_batch(study.files, tiers, config, jobs=jobs)) as batch:
        for file_results in batch:
            for result in file_results:
                by_tier[result.tier].append(result)
            quarantine_failed(study, file_results, layout)
            progress.advance(file_results[0].file_bytes_in or 0)
            if watcher is not None:
                watcher.instance_done(file_results[0].file_bytes_in or 0)
    progress.log(final=True)
    return by_tier


class Progress:
    """Instances done / total and MB/s of source read, logged every few seconds."""

    EVERY_SECONDS = 10.0

    def __init__(self, study_uid: str, total: int, tiers: list[str]) -> None:
        self.study_uid, self.total, self.tiers = study_uid, total, ", ".join(tiers)
        self.done = self.bytes = 0
        self.started = self.last = time.monotonic()

    def advance(self, source_bytes: int) -> None:
        self.done += 1
        self.bytes += source_bytes
        if time.monotonic() - self.last >= self.EVERY_SECONDS:
            self.log()

    def log(self, *, final: bool = False) -> None:
        self.last = time.monotonic()
        elapsed = max(self.last - self.started, 1e-9)
        log.info(
            "%s study %s [%s]: %d/%d instances, %.1f MB/s of source",
            "done" if final else "progress", self.study_uid, self.tiers, self.done, self.total,
            self.bytes / elapsed / 1e6,
        )  # fmt: skip


def without_paths(study: Study, text: str) -> str:
    """``text`` with the study's landing paths replaced by their file keys."""
    for path in study.files:
        text = name_by_key(text, path, study.key(path))
    return " ".join(text.split())


def _check_hold(lease: object, pair: tuple[str, str]) -> None:
    check = getattr(lease, "check", None)
    if check is not None:
        check(pair)


def _end_jobs(
    catalogue: Catalogue, job_ids: Sequence[int], exc: BaseException, study: Study
) -> None:
    """Mark unfinished attempts ``interrupted`` (a signal) or ``failed`` (an error); a
    catalogue that fails too must not hide the first error."""
    interrupted = interrupt.reason(exc)
    if interrupted is None and not isinstance(exc, Exception):
        return  # e.g. SystemExit: the owner's end shows them abandoned
    try:
        if interrupted is not None:
            catalogue.interrupt_jobs(job_ids, interrupted)
            return
        first = (str(exc).strip().splitlines() or [""])[0]  # never a traceback a message holds
        error = without_paths(study, f"{type(exc).__name__}: {first}")[:ERROR_CHARS]
        for job_id in job_ids:
            catalogue.fail_job(job_id, error)
    except Exception as also:  # the original error is the one to raise
        exc.add_note(f"recording jobs {list(job_ids)} as ended failed too: {also}")
