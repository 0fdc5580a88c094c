"""Which codecs a codec-choosing tier (``maxerr20``, ``maxerr150``, ``best-lossless``) may
choose from: the policy file's ``candidates`` and ``viewers``, or the DAG params of those names.

``candidates`` names codec families (``htj2k``, ``jls``, ``jxl``, ``j2k``), for every choosing
tier (``["htj2k", "jls", "j2k"]``) or per tier (``{"default": [...], "best-lossless": [...]}``:
the tier's own list, else ``default``). ``viewers`` names web viewers (``cornerstone-5.6.8``,
OHIF's pin) and keeps only the families every one of them decodes. A restriction only removes
candidates: the rest keep the tier's order, fastest decoder first, which breaks ties.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dcmtier.errors import ConfigError
from dcmtier.tiers import CANDIDATE_FAMILIES, TIERS, VIEWER_FAMILIES, Codec, Tier

CANDIDATES_KEY = "candidates"  # the policy file's keys
VIEWERS_KEY = "viewers"
CHOOSING = tuple(name for name, tier in TIERS.items() if tier.chooses)


@dataclass(frozen=True)
class Candidates:
    """The families each choosing tier may try; ``None``: every candidate of the tier."""

    default: frozenset[str] | None = None
    by_tier: Mapping[str, frozenset[str]] = field(default_factory=dict)
    viewers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for viewer in self.viewers:
            if viewer not in VIEWER_FAMILIES:
                known = ", ".join(VIEWER_FAMILIES)
                raise ConfigError(f"{VIEWERS_KEY}: {viewer!r} is not a known viewer ({known})")
        for name, families in {"default": self.default or (), **self.by_tier}.items():
            if name != "default" and name not in CHOOSING:
                choosing = ", ".join(CHOOSING)
                raise ConfigError(
                    f"{CANDIDATES_KEY}: {name!r} is not a codec-choosing tier ({choosing})"
                )
            for family in sorted(families):
                if family not in CANDIDATE_FAMILIES:
                    raise ConfigError(
                        f"{CANDIDATES_KEY}: {family!r} is not a codec family "
                        f"({', '.join(CANDIDATE_FAMILIES)})"
                    )
        for name in CHOOSING:
            if not self.for_tier(TIERS[name]):
                raise ConfigError(
                    f"{CANDIDATES_KEY}/{VIEWERS_KEY} leave tier {name} no codec to choose "
                    f"(it has {', '.join(c.label for c in TIERS[name].candidates)})"
                )

    @classmethod
    def parse(cls, candidates: object = None, viewers: object = None) -> Candidates:
        """``["htj2k", "jls", "j2k"]`` or ``{"default": [...], "best-lossless": [...]}`` (None:
        no restriction), and ``"cornerstone-5.6.8"`` or a list of viewers (None: none)."""
        named: dict[str, frozenset[str]] = {}
        default: frozenset[str] | None = None
        if isinstance(candidates, Mapping):
            named = {str(k): _families(v, str(k)) for k, v in candidates.items() if k != "default"}
            if "default" in candidates:
                default = _families(candidates["default"], "default")
        elif candidates is not None:
            default = _families(candidates, "default")
        if viewers is None:
            viewers = []
        if isinstance(viewers, str):
            viewers = [viewers]
        if not isinstance(viewers, list) or not all(isinstance(v, str) for v in viewers):
            raise ConfigError(f"{VIEWERS_KEY} must be a viewer or a list of them, not {viewers!r}")
        return cls(default, named, tuple(viewers))

    def for_tier(self, tier: Tier) -> tuple[Codec, ...]:
        """The candidates ``tier`` may try here, in its own order (fastest decoder first)."""
        allowed = self.by_tier.get(tier.name, self.default)
        return tuple(
            codec
            for codec in tier.candidates
            if (allowed is None or codec.label in allowed)
            and all(codec.label in VIEWER_FAMILIES[viewer] for viewer in self.viewers)
        )

    def restricted(self, tier: Tier) -> list[str] | None:
        """The families ``tier`` may try when fewer than its own (what an attempt records and
        its inputs digest); None when it may try them all, so unrestricted inputs stay as
        they were."""
        kept = self.for_tier(tier)
        return [c.label for c in kept] if len(kept) < len(tier.candidates) else None

    @property
    def restricts(self) -> bool:
        """True when some choosing tier may try fewer codecs than its own."""
        return any(self.restricted(TIERS[name]) is not None for name in CHOOSING)


def _families(raw: object, name: str) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(f"{CANDIDATES_KEY} {name!r}: a list of codec families, not {raw!r}")
    return frozenset(raw)
