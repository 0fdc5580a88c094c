"""Storing tiers into a DICOMweb archive with STOW-RS (``dcmtier publish``, the DAG's
``publish_to``), so that viewers find a preview tier where they already look.

What is sent is what the catalogue records as a tier's derived instances: each was written
and verified before it was recorded, so a half-written file is never sent. Outputs whose
quality gate failed (kept flagged by ``on_gate_failure`` keep) are not sent. Per study, the
archive is first asked (QIDO-RS) which instances it holds: only the others are sent, in
batches of ``BATCH_INSTANCES`` instances or ``BATCH_BYTES`` bytes, each request retried on a
transport error or a 5xx. The archive is then asked again, and what it holds is recorded in the
catalogue's ``publications`` table (first publication kept): a rerun sends nothing already
there. A server that stops answering raises with its URL and the reason; the studies finished
before it are recorded, and the next publish sends the rest.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcmtier.catalogue.publications import Derived
from dcmtier.storage import access
from dcmtier.storage.dicomweb import Server
from dcmtier.tiers import resolve_tiers

if TYPE_CHECKING:
    from dcmtier.catalogue import Catalogue

log = logging.getLogger(__name__)

BATCH_INSTANCES = 50
BATCH_BYTES = 64 << 20  # a STOW-RS request's body is built in memory: at most this much


@dataclass
class PublishStats:
    """What one publish did (``dcmtier publish --json``)."""

    destination: str
    tiers: list[str]
    studies: int = 0
    instances: int = 0  # derived instances of the tiers the catalogue records
    already_there: int = 0
    sent: int = 0
    not_sent_gate: int = 0  # outputs flagged by their quality gate: never published
    failed: int = 0
    requests: int = 0  # STOW-RS requests
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # by SOP Instance UID

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


def publish_tiers(
    catalogue: Catalogue,
    tiers: Sequence[str],
    to: str,
    *,
    studies: Sequence[str] | None = None,
    now: datetime | None = None,
) -> PublishStats:
    """Store the derived instances of ``tiers`` (of ``studies`` when given: a DAG run's) into
    the archive ``to`` (module docstring)."""
    started = time.perf_counter()
    names = [t.name for t in resolve_tiers(list(tiers))]
    found = catalogue.publishable(names, studies)
    with Server(to) as server:
        stats = PublishStats(server.url, names, instances=len(found))
        for study_uid, members in groupby(found, key=lambda d: d.study_uid):
            stats.studies += 1
            held = _publish_study(server, study_uid, list(members), stats)
            catalogue.record_publications(server.url, held, now or datetime.now(UTC))
    stats.seconds = time.perf_counter() - started
    return stats


def _publish_study(
    server: Server, study_uid: str, members: list[Derived], stats: PublishStats
) -> list[tuple[Derived, bool]]:
    """Send a study's instances the archive lacks; (instance, sent by us) for those it holds."""
    there = {ref.sop for ref in server.instances(study_uid)}
    wanted = [d for d in members if d.gate_passed]
    stats.not_sent_gate += len(members) - len(wanted)
    todo = [d for d in wanted if d.sop_uid not in there]
    stats.already_there += len(wanted) - len(todo)
    lost: list[Derived] = []
    if todo:
        with tempfile.TemporaryDirectory(prefix="dcmtier-stow-") as scratch:
            for batch in _batches(todo, Path(scratch), lost):
                stats.requests += 1
                for reason in server.store([path for _, path in batch]):
                    log.warning("study %s: %s refused %s", study_uid, server.url, reason)
        there = {ref.sop for ref in server.instances(study_uid)}
    missing = [d for d in todo if d.sop_uid not in there]
    stats.sent += len(todo) - len(missing)
    stats.failed += len(missing)
    stats.failures += [
        f"{d.sop_uid} ({d.tier}): "
        + (
            "output file missing: run the tier again"
            if d in lost
            else f"not stored by {server.url}"
        )
        for d in missing
    ]
    return [(d, d in todo) for d in wanted if d.sop_uid in there]


def _batches(
    todo: Sequence[Derived], scratch: Path, lost: list[Derived]
) -> Iterator[list[tuple[Derived, Path]]]:
    """The instances with their local files, in batches bounded by count and bytes (an
    output on an object store is downloaded into ``scratch`` first); an output whose file is
    gone is added to ``lost``."""
    batch: list[tuple[Derived, Path]] = []
    size = 0
    for number, item in enumerate(todo):
        path = access.fetch(item.output_uri, scratch, f"{number:06d}.dcm")
        try:
            length = path.stat().st_size
        except FileNotFoundError:
            lost.append(item)
            continue
        if batch and (len(batch) >= BATCH_INSTANCES or size + length > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((item, path))
        size += length
    if batch:
        yield batch
