"""Finish one study x tier: its status, its quality partition and its package.

The instances' results become one ``StudyTierResult`` (`summarise`), with the members of the
existing package this attempt did not process carried over (``work.carry``); the per-frame
metrics are written as the study x tier's Parquet partition and the outputs as its ZIP.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcmtier.descriptors import DESCRIPTORS
from dcmtier.measure.store import write_partition
from dcmtier.outputs import uid_name
from dcmtier.packaging.package import PackageMember, write_package
from dcmtier.records import (
    CARRIED,
    DUPLICATE,
    FAILED,
    GATE_FAILED,
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
)
from dcmtier.tiers import Tier
from dcmtier.versions import software_versions
from dcmtier.work import peak
from dcmtier.work.carry import Carried, carry_over, remove_unpackaged
from dcmtier.work.layout import Layout


def finish_tier(
    study: Study,
    tier: Tier,
    *,
    results: list[TierResult],
    layout: Layout,
    run_id: str,
    created_at: datetime,
) -> StudyTierResult:
    """The study x tier's Parquet partition and ZIP from its results; its summary carries the
    highest peak resident memory of its instances' work and of this (`dcmtier.work.peak`)."""
    with peak.window() as measured:
        summary = _finish_tier(
            study, tier, results=results, layout=layout, run_id=run_id, created_at=created_at
        )
    peaks = [r.peak_rss_bytes for r in results if r.peak_rss_bytes is not None]
    summary.peak_rss_bytes = max([measured.bytes, *peaks])
    return summary


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
            codec=_package_codec(tier, results),
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
                    # a choosing tier's chosen codec, which may differ per instance
                    "codec": r.codec or tier.codec.label,
                    "transfer_syntax": r.transfer_syntax or tier.transfer_syntax,
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


def _package_codec(tier: Tier, results: list[TierResult]) -> str:
    """The tier's codec; for a choosing tier, the codecs its instances got ("htj2k+jls")."""
    if not tier.chooses:
        return tier.codec.label
    chosen = sorted({str(r.codec) for r in results if r.status in (OK, GATE_FAILED) and r.codec})
    return "+".join(chosen) or tier.codec.label


def _member(result: TierResult) -> PackageMember:
    return PackageMember(
        path=Path(str(result.output)),
        series_uid=str(result.series_instance_uid),
        sop_uid=str(result.sop_instance_uid_out),
        source_sop_uid=str(result.sop_instance_uid_in),
    )


def content_time(files: Sequence[Path]) -> datetime:
    """The newest source modification time: stable across reruns of the same inputs."""
    newest = max((p.stat().st_mtime for p in files if p.exists()), default=0.0)
    return datetime.fromtimestamp(int(newest), UTC)
