"""Where a run's outputs go under its output root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcmtier.outputs import uid_name


@dataclass(frozen=True)
class Layout:
    """Where one run's outputs go."""

    root: Path

    @property
    def derived(self) -> Path:
        return self.root / "derived"

    @property
    def quality(self) -> Path:
        return self.root / "quality"

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def layer_cache(self) -> Path:
        return self.root / "cache" / "layered"

    @property
    def source_cache(self) -> Path:
        """Each study's sources read once for its tier tasks (``work.sources``)."""
        return self.root / "cache" / "sources"

    def package(self, study_uid: str, tier: str) -> Path:
        """``packages/<StudyInstanceUID>/<tier>.zip`` (``outputs.uid_name`` names the folder)."""
        return self.packages / uid_name(study_uid) / f"{tier}.zip"
