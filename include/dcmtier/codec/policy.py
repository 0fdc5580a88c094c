"""Which tiers an instance may get: modality rules (a table) and pixel-kind rules.

A refusal is an outcome with the rule that made it, reported as ``refused``; never a silent skip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dcmtier.errors import ConfigError, PolicyRefused
from dcmtier.tiers import Tier


@dataclass(frozen=True)
class ModalityRule:
    """Limits for one modality: lossless only, or lossy up to ``max_lossy_ratio``."""

    lossless_only: bool = False
    max_lossy_ratio: float | None = None


DEFAULT_MODALITY_RULES: Mapping[str, ModalityRule] = {
    # Mammography is read at full fidelity: lossless only (REFERENCE.md section 1).
    "MG": ModalityRule(lossless_only=True),
}


@dataclass(frozen=True)
class Policy:
    """The modality table in force; modalities absent from it have no limit."""

    modality_rules: Mapping[str, ModalityRule] = field(
        default_factory=lambda: dict(DEFAULT_MODALITY_RULES)
    )

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        """Read ``{"MG": {"lossless_only": true}, "CR": {"max_lossy_ratio": 20}}`` from JSON."""
        try:
            raw = json.loads(path.read_text())
            rules = {str(k).upper(): ModalityRule(**v) for k, v in raw.items()}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: not a valid modality policy: {exc}") from exc
        return cls(rules)

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
