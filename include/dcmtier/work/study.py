"""The unit of work: for one study and each tier, compress, verify, measure, write the
quality partition and the package, and quarantine what failed.

Layout under the output root: ``derived/``, ``quality/``, ``packages/``, ``quarantine/``.
Everything written is keyed by UIDs and tier, so running it again replaces rather than adds.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcmtier.codec.policy import Policy
from dcmtier.measure.store import write_partition
from dcmtier.packaging.package import PackageMember, write_package
from dcmtier.records import (
    FAILED,
    GATE_FAILED,
    LAYERED,
    OK,
    PER_TIER,
    STUDY_FAILED,
    STUDY_OK,
    STUDY_PARTIAL,
    Study,
    StudyTierResult,
    TierResult,
    name_by_key,
)
from dcmtier.tiers import Tier, layered_tiers
from dcmtier.versions import software_versions
from dcmtier.work.batch import run_batch
from dcmtier.work.compress import Options
from dcmtier.work.layout import Layout
from dcmtier.work.quarantine import quarantine_failed

if TYPE_CHECKING:  # the catalogue (SQLAlchemy) loads only when a caller passes one
    from dcmtier.catalogue import Catalogue, JobContext

log = logging.getLogger(__name__)


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
) -> list[StudyTierResult]:
    """Run one study through every tier; one result per tier, never raising for bad input.

    With the ``layered`` strategy, the J2K rate tiers (of ``tiers``, and of ``layer_tiers`` when
    a task makes one tier of a wider run) are cut from one layered encode per frame, kept under
    ``<output>/cache/layered`` so that the tier tasks of a study share it.

    With a ``catalogue``, the study's sources are recorded once and each tier is an attempt
    (``start_job`` ... ``finish_job``) under ``context`` (default: ``JobContext.cli(run_id)``).
    An unexpected exception marks the unfinished attempts failed and is raised again.
    """
    policy = policy or Policy()
    layering = _layering(strategy, tiers, layer_tiers)
    jobs_of = _start_jobs(
        catalogue, study, tiers, context, layout=layout, run_id=run_id, jobs=jobs, policy=policy,
        layering=layering,
    )  # fmt: skip
    done: list[StudyTierResult] = []
    try:
        options = Options(
            layout.derived,
            policy,
            measure=True,
            strategy=strategy,
            layer_tiers=tuple(layer_tiers),
            layer_cache=layout.layer_cache if strategy == LAYERED else None,
        )
        by_tier = _compress_study(study, tiers, layout, jobs=jobs, options=options)
        created_at = _content_time(study.files)
        for tier in tiers:
            result = _finish_tier(
                study,
                tier,
                results=by_tier[tier.name],
                layout=layout,
                run_id=run_id,
                created_at=created_at,
            )
            if catalogue is not None:
                catalogue.finish_job(jobs_of[tier.name], result)
            done.append(result)
    except Exception as exc:
        if catalogue is not None:
            error = without_paths(study, f"{type(exc).__name__}: {exc}")
            _fail_jobs(catalogue, [jobs_of[t.name] for t in tiers[len(done) :]], error, exc)
        raise
    return done


def _compress_study(
    study: Study, tiers: Sequence[Tier], layout: Layout, *, jobs: int, options: Options
) -> dict[str, list[TierResult]]:
    by_tier: dict[str, list[TierResult]] = {t.name: [] for t in tiers}
    progress = Progress(study.uid, len(study.files), [t.name for t in tiers])
    for file_results in run_batch(study.files, tiers, options, jobs=jobs):
        for result in file_results:
            by_tier[result.tier].append(result)
        quarantine_failed(study, file_results, layout)
        progress.advance(file_results[0].file_bytes_in or 0)
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


def _start_jobs(
    catalogue: Catalogue | None,
    study: Study,
    tiers: Sequence[Tier],
    context: JobContext | None,
    *,
    layout: Layout,
    run_id: str,
    jobs: int,
    policy: Policy,
    layering: dict[str, dict[str, Any]],
) -> dict[str, int]:
    """Record the study and open one attempt per tier; nothing without a catalogue."""
    if catalogue is None:
        return {}
    if context is None:
        from dcmtier.catalogue import JobContext

        context = JobContext.cli(run_id)
    catalogue.record_study(study)
    rules = {m: asdict(rule) for m, rule in sorted(policy.modality_rules.items())}
    shared = {"jobs": jobs, "policy": rules, "output": str(layout.root.absolute())}
    return {
        tier.name: catalogue.start_job(
            study.uid, tier, context, {**shared, **tier.parameters(), **layering[tier.name]}
        )
        for tier in tiers
    }


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


def _fail_jobs(catalogue: Catalogue, job_ids: Sequence[int], error: str, exc: Exception) -> None:
    """Mark attempts failed; a catalogue that fails too must not hide the first error."""
    for job_id in job_ids:
        try:
            catalogue.fail_job(job_id, error)
        except Exception as also:  # the original error is the one to raise
            exc.add_note(f"recording job {job_id} as failed failed too: {also}")


def _finish_tier(
    study: Study,
    tier: Tier,
    *,
    results: list[TierResult],
    layout: Layout,
    run_id: str,
    created_at: datetime,
) -> StudyTierResult:
    summary = _summarise(study, tier, results, run_id)
    rows = _quality_rows(results, tier, run_id)
    summary.quality_partition = str(
        write_partition(layout.quality, tier=tier.name, study_uid=study.uid, rows=rows)
    )
    members = [_member(r) for r in results if r.status == OK]
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
    return summary


def _summarise(study: Study, tier: Tier, results: list[TierResult], run_id: str) -> StudyTierResult:
    counts: dict[str, int] = defaultdict(int)
    for r in results:
        counts[r.status] += 1
    done = [r for r in results if r.status in (OK, GATE_FAILED)]
    bad = counts.get(FAILED, 0) + counts.get(GATE_FAILED, 0)
    status = STUDY_OK if not bad else STUDY_FAILED if bad == len(results) else STUDY_PARTIAL
    return StudyTierResult(
        study_uid=study.uid,
        tier=tier.name,
        status=status,
        run_id=run_id,
        instances=len(results),
        counts=dict(sorted(counts.items())),
        pixel_bytes_in=sum(r.pixel_bytes_in or 0 for r in done),
        pixel_bytes_out=sum(r.pixel_bytes_out or 0 for r in done),
        file_bytes_in=sum(r.file_bytes_in or 0 for r in done),
        file_bytes_out=sum(r.file_bytes_out or 0 for r in done),
        failures=[
            {
                "source": r.source,  # the file key
                "sop_uid": r.sop_instance_uid_in or study.sop_uids.get(Path(r.path or "")),
                "status": r.status,
                "reason": r.reason,
                "rule": r.rule or r.gate,
            }
            for r in results
            if r.status not in (OK,) and r.status != "skipped"
        ],
        results=results,
    )


def _quality_rows(results: list[TierResult], tier: Tier, run_id: str) -> list[dict[str, Any]]:
    software = json.dumps(software_versions(), sort_keys=True)
    now = datetime.now(UTC)
    rows = []
    for r in results:
        for metrics in r.frame_metrics:
            rows.append(
                {
                    **metrics,
                    "study_uid": r.study_instance_uid,
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
