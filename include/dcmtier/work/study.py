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
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dcmtier.codec.policy import Policy
from dcmtier.descriptors import DESCRIPTORS
from dcmtier.measure.store import write_partition
from dcmtier.outputs import uid_name
from dcmtier.owner import checkpoint, remove_dead_temps
from dcmtier.packaging.package import PackageMember, write_package
from dcmtier.records import (
    CARRIED,
    DUPLICATE,
    FAILED,
    GATE_FAILED,
    LAYERED,
    OK,
    PER_TIER,
    REJECTED,
    SKIPPED,
    STUDY_FAILED,
    STUDY_OK,
    STUDY_PARTIAL,
    STUDY_REJECTED,
    Study,
    StudyTierResult,
    TierResult,
    name_by_key,
)
from dcmtier.tiers import Tier, layered_tiers
from dcmtier.versions import software_versions
from dcmtier.work import interrupt
from dcmtier.work.batch import run_batch
from dcmtier.work.carry import Carried, carry_over, remove_unpackaged
from dcmtier.work.compress import Options
from dcmtier.work.duplicates import split_duplicates
from dcmtier.work.layout import Layout
from dcmtier.work.publish import Publisher
from dcmtier.work.quarantine import quarantine_failed
from dcmtier.work.sources import SourceIndex, known_sources

if TYPE_CHECKING:  # the catalogue (SQLAlchemy) loads only when a caller passes one
    from dcmtier.catalogue import Catalogue, JobContext
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
    layout: Layout,
    *,
    run_id: str,
    jobs: int = 1,
    policy: Policy | None = None,
    catalogue: Catalogue | None = None,
    context: JobContext | None = None,
    strategy: str = LAYERED,
    layer_tiers: Sequence[Tier] = (),
    since: datetime | None = None,
    watcher: Watcher | None = None,
    publisher: Publisher | None = None,
    sources: SourceIndex | None = None,
) -> list[StudyTierResult]:
    """Run one study through every tier; one result per tier, never raising for bad input.

    With the ``layered`` strategy, the J2K rate tiers (of ``tiers``, and of ``layer_tiers`` when
    a task makes one tier of a wider run) are cut from one layered encode per frame, kept under
    ``<output>/cache/layered`` so that the tier tasks of a study share it.

    With a ``catalogue``, the study's sources are recorded once and each tier is an attempt
    (``start_job`` ... ``finish_job``) under ``context`` (default: ``JobContext.cli(run_id)``),
    owned by this process and leased while it works. Each study x tier is held exclusively
    (`dcmtier.catalogue.holds`): a tier another run holds is waited for, and not made again
    when that run finished it after ``since`` (default: now) from the same inputs. An
    unexpected exception marks the unfinished attempts failed (``interrupted`` for SIGINT and
    SIGTERM) and is raised again. Temporary files that dead processes left in the study's
    folders are removed first. A ``watcher`` hears of each instance compressed into every
    tier and of each tier finished.

    With a ``publisher`` (an output root on object storage), ``layout`` is the worker's local
    scratch: each finished tier is published to the store before the catalogue records it
    (``work.publish``); then its objects the result no longer names (outputs the gate now
    rejects) are deleted from the store and its files removed from scratch.

    With ``sources`` (a DAG tier task: the study's sources as its encode task read them,
    ``work.sources``), the sources it holds are neither read nor hashed again.
    """
    work = _Work(
        study, layout, run_id=run_id, jobs=jobs, policy=policy or Policy(), strategy=strategy,
        layer_tiers=(*layer_tiers, *tiers), watcher=watcher, publisher=publisher,
        sources=sources,
    )  # fmt: skip
    if catalogue is None:
        _sweep(layout, study.uid, tiers)
        return work.attempt(tiers)
    catalogue.reap([study.uid])
    since = since or datetime.now(UTC)
    made: dict[str, StudyTierResult] = {}
    holds = catalogue.holds()
    try:
        pending = list(tiers)
        while pending:
            held = _hold_some(holds, study.uid, pending)
            pending = [t for t in pending if t not in held]
            try:
                _sweep(layout, study.uid, held)
                inputs = {t.name: work.inputs(t) for t in held}
                done = catalogue.done_since(study.uid, inputs, since)
                for name, result in done.items():
                    log.info("study %s tier %s: made meanwhile by %s", study.uid, name,
                             result.done_by)  # fmt: skip
                todo = [t for t in held if t.name not in done]
                results = work.attempt(todo, catalogue=catalogue, context=context, holds=holds)
                made.update(done)
                made.update({r.tier: r for r in results})
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


class _Work:
    """One study's settings for its attempts: what `process_study` passes down."""

    def __init__(
        self, study: Study, layout: Layout, *, run_id: str, jobs: int, policy: Policy,
        strategy: str, layer_tiers: Sequence[Tier], watcher: Watcher | None,
        publisher: Publisher | None = None, sources: SourceIndex | None = None,
    ) -> None:  # fmt: skip
        self.study, self.layout, self.run_id, self.jobs = study, layout, run_id, jobs
        self.policy, self.strategy, self.watcher = policy, strategy, watcher
        self.publisher, self.sources = publisher, sources
        self.layer_tiers = tuple({t.name: t for t in layer_tiers}.values())

    def parameters(self, tier: Tier) -> dict[str, Any]:
        """What the attempt at ``tier`` records as its parameters (without ``inputs``)."""
        rules = {m: asdict(rule) for m, rule in sorted(self.policy.modality_rules.items())}
        layering = _layering(self.strategy, [tier], self.layer_tiers)[tier.name]
        return {
            "jobs": self.jobs, "policy": rules, "output": self.output,
            **tier.parameters(), **layering,
            "on_gate_failure": self.policy.on_gate_failure.for_tier(tier),
        }  # fmt: skip

    @property
    def output(self) -> str:
        """The output root: the store's URL, or the local folder."""
        if self.publisher is not None:
            return self.publisher.store.url
        return str(self.layout.root.absolute())

    def inputs(self, tier: Tier) -> str:
        """A digest of everything that decides what an attempt at ``tier`` makes: the sources
        (names, sizes, times) and the parameters other than the process count."""
        sources = []
        for path in sorted(self.study.files):
            stat = path.stat() if path.exists() else None
            sources.append([self.study.uri(path), stat and stat.st_size, stat and stat.st_mtime_ns])
        made = {k: v for k, v in self.parameters(tier).items() if k != "jobs"}
        text = json.dumps([sources, made], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def attempt(
        self,
        tiers: Sequence[Tier],
        *,
        catalogue: Catalogue | None = None,
        context: JobContext | None = None,
        holds: Holds | None = None,
    ) -> list[StudyTierResult]:
        if not tiers:
            return []
        jobs_of = self._start_jobs(catalogue, tiers, context)
        lease: AbstractContextManager[object] = nullcontext()
        if catalogue is not None and holds is not None:
            from dcmtier.catalogue.lease import Lease

            lease = Lease(catalogue, list(jobs_of.values()), holds)
        done: list[StudyTierResult] = []
        try:
            with lease:
                if self.publisher is not None:
                    self.publisher.fetch_known(self.study.uid, [t.name for t in tiers])
                by_tier = self._compress(tiers)
                created_at = _content_time(self.study.files)
                for tier in tiers:
                    result = _finish_tier(
                        self.study, tier, results=by_tier[tier.name], layout=self.layout,
                        run_id=self.run_id, created_at=created_at,
                    )  # fmt: skip
                    published = []
                    if self.publisher is not None:
                        published = self.publisher.publish(result)
                    if catalogue is not None:
                        _check_hold(lease, (self.study.uid, tier.name))
                        catalogue.finish_job(jobs_of[tier.name], result)  # the commit point
                    if self.publisher is not None:  # after the commit point
                        self.publisher.prune(result, published)
                        self.publisher.clear(self.study.uid, tier.name)
                    done.append(result)
                    if self.watcher is not None:
                        self.watcher.tier_done(result)
                    checkpoint("between-tiers")
        except BaseException as exc:
            if catalogue is not None:
                unfinished = [jobs_of[t.name] for t in tiers[len(done) :]]
                _end_jobs(catalogue, unfinished, exc, self.study)
            raise
        return done

    def _compress(self, tiers: Sequence[Tier]) -> dict[str, list[TierResult]]:
        """Every file into every tier, but each SOP Instance UID once (``work.duplicates``):
        a repeat is ``duplicate``, files that conflict are ``failed`` and quarantined."""
        made, left_out = split_duplicates(self.study)
        by_tier = _compress_study(
            dataclasses.replace(self.study, files=made), tiers, self.layout, jobs=self.jobs,
            options=self._options(), watcher=self.watcher,
        )  # fmt: skip
        for item in left_out:
            results = item.results(self.study, list(tiers))
            quarantine_failed(self.study, results, self.layout)
            for left in results:
                by_tier[left.tier].append(left)
        return by_tier

    def _options(self) -> Options:
        return Options(
            self.layout.derived,
            self.policy,
            measure=True,
            strategy=self.strategy,
            layer_tiers=self.layer_tiers,
            layer_cache=self.layout.layer_cache if self.strategy == LAYERED else None,
            sources=self.sources,
        )

    def _start_jobs(
        self, catalogue: Catalogue | None, tiers: Sequence[Tier], context: JobContext | None
    ) -> dict[str, int]:
        """Record the study and open one attempt per tier; nothing without a catalogue."""
        if catalogue is None:
            return {}
        if context is None:
            from dcmtier.catalogue import JobContext

            context = JobContext.cli(self.run_id)
        catalogue.record_study(self.study, known=known_sources(self.sources))
        return {
            tier.name: catalogue.start_job(
                self.study.uid,
                tier,
                context,
                {**self.parameters(tier), "inputs": self.inputs(tier)},
            )
            for tier in tiers
        }


def _compress_study(
    study: Study,
    tiers: Sequence[Tier],
    layout: Layout,
    *,
    jobs: int,
    options: Options,
    watcher: Watcher | None,
) -> dict[str, list[TierResult]]:
    by_tier: dict[str, list[TierResult]] = {t.name: [] for t in tiers}
    progress = Progress(study.uid, len(study.files), [t.name for t in tiers])
    # closed on the way out of an error or a signal: the workers stop with it
    with closing(run_batch(study.files, tiers, options, jobs=jobs)) as batch:
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


def _layering(
    strategy: str, tiers: Sequence[Tier], layer_tiers: Sequence[Tier]
) -> dict[str, dict[str, Any]]:
    """Which strategy, and which layer of how many, makes each tier (recorded in lineage)."""
    layered = layered_tiers([*{t.name: t for t in (*layer_tiers, *tiers)}.values()])
    names = [t.name for t in layered] if strategy == LAYERED and len(layered) > 1 else []
    return {
        t.name: (
            {"strategy": LAYERED, "layer": names.index(t.name) + 1, "layers": len(names)}
            if t.name in names
            else {"strategy": PER_TIER}
        )
        for t in tiers
    }


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


def _finish_tier(
    study: Study,
    tier: Tier,
    *,
    results: list[TierResult],
    layout: Layout,
    run_id: str,
    created_at: datetime,
) -> StudyTierResult:
    for r in results:  # a file that could not be read still has the UID discovery read
        r.sop_instance_uid_in = r.sop_instance_uid_in or study.sop_uids.get(Path(r.path or ""))
    processed = {r.sop_instance_uid_in for r in results if r.sop_instance_uid_in}
    carried = carry_over(layout, study.uid, tier.name, processed)
    summary = _summarise(study, tier, results, run_id, carried)
    name = uid_name(study.uid)
    rows = _quality_rows(results, tier, run_id, name) + carried.rows
    summary.quality_partition = str(
        write_partition(layout.quality, tier=tier.name, study_uid=name, rows=rows)
    )
    members = [_member(r) for r in results if r.status in (OK, GATE_FAILED)] + carried.members
    if members:
        info = write_package(
            layout.package(study.uid, tier.name),
            members,
            study_uid=study.uid,
            tier=tier.name,
            codec=tier.codec.label,
            target_ratio=tier.target_ratio,
            software=software_versions(),
            created_at=created_at,
        )
        summary.package, summary.package_bytes = str(info.path), info.bytes
        summary.package_sha256 = info.sha256
    else:
        layout.package(study.uid, tier.name).unlink(missing_ok=True)
    remove_unpackaged(layout, study.uid, tier.name, keep=[m.path for m in members])
    return summary


def _summarise(
    study: Study, tier: Tier, results: list[TierResult], run_id: str, carried: Carried
) -> StudyTierResult:
    """The study x tier's status: ``failed`` when every instance failed, ``rejected`` when the
    gate rejected every output and none failed, ``partial`` when some failed or were rejected,
    else ``ok`` (fallbacks, kept and flagged outputs, carried members and duplicates
    included). Carried members count as instances; a known member that could not be carried
    counts as failed."""
    counts: dict[str, int] = defaultdict(int)
    outcomes: dict[str, int] = defaultdict(int)
    for r in results:
        counts[r.status] += 1
        for m in r.frame_metrics:
            if m.get("gate_action"):
                outcomes[str(m["gate_action"])] += 1
    counts[CARRIED] += len(carried.members)
    counts[FAILED] += len(carried.failures)
    instances = len(results) + len(carried.members) + len(carried.failures)
    done = [r for r in results if r.status in (OK, GATE_FAILED)]
    failed, rejected = counts[FAILED], counts[REJECTED]
    if failed and failed == instances - counts[DUPLICATE]:
        status = STUDY_FAILED
    elif rejected and not done and not carried.members and not failed:
        status = STUDY_REJECTED
    else:
        status = STUDY_PARTIAL if failed or rejected else STUDY_OK
    return StudyTierResult(
        study_uid=study.uid,
        tier=tier.name,
        status=status,
        run_id=run_id,
        instances=instances,
        counts={k: v for k, v in sorted(counts.items()) if v},
        pixel_bytes_in=sum(r.pixel_bytes_in or 0 for r in done),
        pixel_bytes_out=sum(r.pixel_bytes_out or 0 for r in done),
        file_bytes_in=sum(r.file_bytes_in or 0 for r in done),
        file_bytes_out=sum(r.file_bytes_out or 0 for r in done),
        failures=[
            {
                "source": r.source,  # the file key
                "sop_uid": r.sop_instance_uid_in,
                "status": r.status,
                "reason": r.reason,
                "rule": r.rule or r.gate,
                "key": r.params.get("key"),
            }
            for r in results
            if r.status not in (OK, SKIPPED)
        ]
        + carried.failures,
        gate_outcomes=dict(sorted(outcomes.items())),
        carried=carried.sop_uids,
        results=results,
    )


def _quality_rows(
    results: list[TierResult], tier: Tier, run_id: str, study_name: str
) -> list[dict[str, Any]]:
    software = json.dumps(software_versions(), sort_keys=True)
    now = datetime.now(UTC)
    rows = []
    for r in results:
        for metrics in r.frame_metrics:
            rows.append(
                {
                    **metrics,
                    **dict.fromkeys(DESCRIPTORS),
                    "modality": r.modality,
                    **r.descriptors,
                    "study_uid": study_name,
                    "series_uid": r.series_instance_uid,
                    "source_sop_uid": r.sop_instance_uid_in,
                    "derived_sop_uid": r.sop_instance_uid_out,
                    "tier": tier.name,
                    "codec": tier.codec.label,
                    "transfer_syntax": tier.transfer_syntax,
                    "strategy": r.params.get("strategy", PER_TIER),
                    "target_ratio": tier.target_ratio,
                    "file_bytes_in": r.file_bytes_in,
                    "file_bytes_out": r.file_bytes_out,
                    "pixel_ratio": metrics["pixel_bytes_in"] / metrics["pixel_bytes_out"],
                    "gate_action": metrics.get("gate_action"),
                    "fell_back": bool(metrics.get("fell_back")),
                    "file_ratio": r.file_ratio,
                    "run_id": run_id,
                    "software": software,
                    "computed_at": now,
                }
            )
    return rows


def _member(result: TierResult) -> PackageMember:
    return PackageMember(
        path=Path(str(result.output)),
        series_uid=str(result.series_instance_uid),
        sop_uid=str(result.sop_instance_uid_out),
        source_sop_uid=str(result.sop_instance_uid_in),
    )


def _content_time(files: Sequence[Path]) -> datetime:
    """The newest source modification time: stable across reruns of the same inputs."""
    newest = max((p.stat().st_mtime for p in files if p.exists()), default=0.0)
    return datetime.fromtimestamp(int(newest), UTC)
