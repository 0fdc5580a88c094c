"""Which tiers an instance may get (modality rules, a table, and pixel-kind rules), and what
happens to a frame that breaks its tier's quality gate (``on_gate_failure``).

A refusal is an outcome with the rule that made it, reported as ``refused``; never a silent skip.
A gate result is a quality outcome, handled by the policy: never an error, never retried.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from dcmtier.codec.candidates import CANDIDATES_KEY, VIEWERS_KEY, Candidates
from dcmtier.errors import ConfigError, PolicyRefused
from dcmtier.tiers import TIERS, Tier, Use

# What happens to a frame whose decoded output breaks its tier's gate:
FALLBACK = "fallback"  # recoded at the highest ratio meeting the gate; the output keeps its tier
REJECT = "reject"  # the instance's output is not kept (nothing in derived/, not in the package)
KEEP = "keep"  # the output is kept and flagged (gate_failed), for measurement
GATE_ACTIONS = (FALLBACK, REJECT, KEEP)
GATE_KEY = "on_gate_failure"  # the policy file's key for them
# ... and CANDIDATES_KEY, VIEWERS_KEY for the choosing tiers' codecs; every other key is a modality


@dataclass(frozen=True)
class GateActions:
    """``on_gate_failure`` per tier name, else per usage band, else ``default``."""

    default: str = FALLBACK
    by_name: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = {*TIERS, *(u.value for u in Use)}
        for name, action in {"default": self.default, **self.by_name}.items():
            if action not in GATE_ACTIONS:
                raise ConfigError(
                    f"{GATE_KEY} {name!r}: {action!r} is not one of {', '.join(GATE_ACTIONS)}"
                )
            if name != "default" and name not in known:
                raise ConfigError(
                    f"{GATE_KEY}: {name!r} is neither a tier nor a usage band "
                    f"({', '.join(u.value for u in Use)})"
                )

    @classmethod
    def parse(cls, raw: object) -> GateActions:
        """``"keep"``, or ``{"default": "fallback", "thumbnail": "keep", "j2k-r20": "reject"}``."""
        if isinstance(raw, str):
            return cls(raw)
        if not isinstance(raw, dict):
            raise ConfigError(f"{GATE_KEY} must be an action or an object, not {raw!r}")
        named = {str(k): str(v) for k, v in raw.items() if k != "default"}
        return cls(str(raw.get("default", FALLBACK)), named)

    def for_tier(self, tier: Tier) -> str:
        return self.by_name.get(tier.name) or self.by_name.get(tier.use.value) or self.default


@dataclass(frozen=True)
class ModalityRule:
    """Limits for one modality: lossless only, or lossy up to ``max_lossy_ratio``."""

    lossless_only: bool = False
    max_lossy_ratio: float | None = None


DEFAULT_MODALITY_RULES: Mapping[str, ModalityRule] = {
    # Mammography is read at full fidelity: lossless only (docs/concepts/reference-survey.md).
    "MG": ModalityRule(lossless_only=True),
}


@dataclass(frozen=True)
class Policy:
    """The modality table in force (modalities absent from it have no limit), what happens
    to frames that break their tier's quality gate, and which codecs the tiers that choose
    one per instance may choose from (`dcmtier.codec.candidates`)."""

    modality_rules: Mapping[str, ModalityRule] = field(
        default_factory=lambda: dict(DEFAULT_MODALITY_RULES)
    )
    on_gate_failure: GateActions = field(default_factory=GateActions)
    candidates: Candidates = field(default_factory=Candidates)

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        """Read ``{"MG": {"lossless_only": true}, "CR": {"max_lossy_ratio": 20},
        "on_gate_failure": {"default": "fallback", "thumbnail": "keep"},
        "candidates": ["htj2k", "jls", "j2k"], "viewers": ["cornerstone-5.6.8"]}`` from JSON."""
        try:
            raw = json.loads(path.read_text())
            actions = GateActions.parse(raw.pop(GATE_KEY, FALLBACK))
            candidates = Candidates.parse(raw.pop(CANDIDATES_KEY, None), raw.pop(VIEWERS_KEY, None))
            rules = {str(k).upper(): ModalityRule(**v) for k, v in raw.items()}
        except ConfigError as exc:
            raise ConfigError(f"{path}: not a valid policy: {exc}") from exc
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: not a valid modality policy: {exc}") from exc
        return cls(rules, actions, candidates)

    def with_gate_action(self, action: str | None) -> Policy:
        """This policy with ``action`` for every tier (a command-line flag or a DAG param)."""
        if action is None:
            return self
        return replace(self, on_gate_failure=GateActions(action))

    def with_candidates(self, candidates: Candidates | None) -> Policy:
        """This policy with ``candidates`` when they restrict anything (the DAG params)."""
        if candidates is None or not candidates.restricts:
            return self
        return replace(self, candidates=candidates)

    def max_ratio(self, modality: str) -> float | None:
        """The highest lossy ratio the modality allows (None: no limit)."""
        rule = self.modality_rules.get(modality.upper())
        return rule.max_lossy_ratio if rule is not None else None

    def check(self, tier: Tier, *, modality: str, kind: PixelKind) -> None:
        """Raise ``PolicyRefused`` when ``tier`` is not allowed for this instance."""
        if tier.lossless:
            return
        if kind.bits_allocated == 1:
            raise PolicyRefused(
                "1-bit (binary) pixel data takes lossless tiers only", rule="pixel:1-bit"
            )
        if kind.photometric == "PALETTE COLOR":
            raise PolicyRefused(
                "PALETTE COLOR pixels are palette indices, not intensities: lossless only",
                rule="pixel:palette",
            )
        rule = self.modality_rules.get(modality.upper())
        if rule is None:
            return
        if rule.lossless_only:
            raise PolicyRefused(
                f"modality {modality} is lossless only", rule=f"modality:{modality}:lossless-only"
            )
        ratio = tier.target_ratio
        if rule.max_lossy_ratio is not None and ratio is not None and ratio > rule.max_lossy_ratio:
            raise PolicyRefused(
                f"modality {modality} allows lossy ratios up to {rule.max_lossy_ratio:g}:1, "
                f"tier {tier.name} asks {ratio:g}:1",
                rule=f"modality:{modality}:max-ratio:{rule.max_lossy_ratio:g}",
            )


@dataclass(frozen=True)
class PixelKind:
    """The few pixel attributes that policy rules look at."""

    bits_allocated: int
    photometric: str
