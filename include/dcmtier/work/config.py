"""How a run processes its studies (`RunConfig`), and what each attempt records of it.

A ``RunConfig`` is made once at the edge (``dcmtier process``, the DAG's tier task, a
benchmark) and passed down as it is; the per-file settings of its batches
(``CompressConfig``) are derived from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dcmtier.codec.policy import Policy
from dcmtier.records import LAYERED, PER_TIER, Study
from dcmtier.tiers import Tier, layered_tiers
from dcmtier.work import gating
from dcmtier.work.compress import CompressConfig
from dcmtier.work.layout import Layout
from dcmtier.work.publish import Publisher
from dcmtier.work.sources import SourceIndex

if TYPE_CHECKING:  # the catalogue (SQLAlchemy) loads only when a caller passes one
    from dcmtier.catalogue import Catalogue, JobContext


@dataclass(frozen=True)
class RunConfig:
    """The settings of a run, for every study it processes.

    ``layout`` is the output root, or with a ``publisher`` (an output root on object storage)
    the worker's local scratch. With a ``catalogue`` each study x tier is an attempt recorded
    under ``context`` (default: ``JobContext.cli(run_id)``); a tier another run finished after
    ``since`` (default: when the study starts) from the same inputs is not made again.
    """

    layout: Layout
    run_id: str
    jobs: int = 1
    policy: Policy = field(default_factory=Policy)
    strategy: str = LAYERED  # or PER_TIER
    layer_tiers: tuple[Tier, ...] = ()  # the run's J2K rate tiers, when a task makes fewer
    catalogue: Catalogue | None = None
    context: JobContext | None = None
    since: datetime | None = None
    publisher: Publisher | None = None

    @property
    def output(self) -> str:
        """The output root: the store's URL, or the local folder."""
        if self.publisher is not None:
            return self.publisher.store.url
        return str(self.layout.root.absolute())

    def compress_config(self, sources: SourceIndex | None = None) -> CompressConfig:
        """How this run's batches compress: into ``derived/``, measured and gated."""
        return CompressConfig(
            self.layout.derived,
            self.policy,
            strategy=self.strategy,
            layer_tiers=self.layer_tiers,
            layer_cache=self.layout.layer_cache if self.strategy == LAYERED else None,
            measure=gating.measure,
            sources=sources,
        )

    def parameters(self, tier: Tier) -> dict[str, Any]:
        """What the attempt at ``tier`` records as its parameters (without ``inputs``)."""
        rules = {m: asdict(rule) for m, rule in sorted(self.policy.modality_rules.items())}
        layering = layering_of(self.strategy, [tier], self.layer_tiers)[tier.name]
        params: dict[str, Any] = {
            "jobs": self.jobs, "policy": rules, "output": self.output,
            **tier.parameters(), **layering,
            "on_gate_failure": self.policy.on_gate_failure.for_tier(tier),
        }  # fmt: skip
        # only when the policy leaves a choosing tier fewer codecs: other inputs stay as they were
        restricted = self.policy.candidates.restricted(tier) if tier.chooses else None
        if restricted is not None:
            params["candidates"] = restricted
        return params

    def inputs(self, study: Study, tier: Tier) -> str:
        """A digest of everything that decides what an attempt at ``tier`` makes: the sources
        (names, sizes, times) and the parameters other than the process count."""
        sources = []
        for path in sorted(study.files):
            stat = path.stat() if path.exists() else None
            sources.append([study.uri(path), stat and stat.st_size, stat and stat.st_mtime_ns])
        made = {k: v for k, v in self.parameters(tier).items() if k != "jobs"}
        text = json.dumps([sources, made], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def layering_of(
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
