"""The records that several stages share: a study, one (source, tier) result, one study x tier
result, and the status and strategy words they carry.

Everything here is plain data (no I/O, no codec, no database), so the unit of work, the
catalogue, discovery and the benchmark can all import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Status of one (source, tier).
OK, SKIPPED, REFUSED, FAILED = "ok", "skipped", "refused", "failed"
GATE_FAILED = "gate_failed"  # written and verified, but a frame broke the tier's quality gate
DUPLICATE = "duplicate"  # repeats another file's SOP Instance UID and pixel data: made once
CARRIED = "carried"  # not in this attempt; its verified output kept from an earlier one

# Status of one study x tier.
STUDY_OK, STUDY_PARTIAL, STUDY_FAILED = "ok", "partial", "failed"

# Encode strategies: J2K rate tiers encoded one by one, or cut from one layered encode.
PER_TIER, LAYERED = "per_tier", "layered"
STRATEGIES = (PER_TIER, LAYERED)


@dataclass(frozen=True)
class Study:
    """Files that share a StudyInstanceUID (from their headers, not their folders)."""

    uid: str
    files: tuple[Path, ...]
    sop_uids: Mapping[Path, str]
    uris: Mapping[Path, str] = field(default_factory=dict)  # recorded location, if not the path

    def uri(self, path: Path) -> str:
        """Where the catalogue records ``path`` (a staged copy may stand in for a remote file)."""
        return self.uris.get(path) or path.absolute().as_uri()


@dataclass(frozen=True)
class Unidentified:
    """A file whose header gives no StudyInstanceUID."""

    path: Path
    reason: str
    status: str = FAILED  # or SKIPPED: not a DICOM file, or a DICOMDIR


@dataclass
class TierResult:
    """What happened to one (source, tier); the ``--json`` line of ``dcmtier compress``."""

    source: str
    tier: str
    status: str
    reason: str | None = None
    error: str | None = None  # the error class, for failed
    rule: str | None = None
    output: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid_in: str | None = None
    sop_instance_uid_out: str | None = None
    modality: str | None = None
    codec: str | None = None
    transfer_syntax: str | None = None
    target_ratio: float | None = None
    frames: int | None = None
    pixel_bytes_in: int | None = None
    pixel_bytes_out: int | None = None
    pixel_ratio: float | None = None
    file_bytes_in: int | None = None
    file_bytes_out: int | None = None
    file_ratio: float | None = None
    encode_ms: float | None = None
    verify_ms: float | None = None  # write, read back, decode and compare
    decode_ms: float | None = None  # of which inside the decoder
    encodes: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    gate: str | None = None  # the quality rule broken, with its numbers
    frame_metrics: list[dict[str, Any]] = field(default_factory=list)  # with Options.measure

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StudyTierResult:
    """The outcome of one study x tier: what the DAG's mapped task returns (no pixels)."""

    study_uid: str
    tier: str
    status: str
    run_id: str
    instances: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    pixel_bytes_in: int = 0
    pixel_bytes_out: int = 0
    file_bytes_in: int = 0
    file_bytes_out: int = 0
    quality_partition: str | None = None
    package: str | None = None
    package_bytes: int | None = None
    package_sha256: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)  # source SOP UIDs kept from earlier attempts
    results: list[TierResult] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("results")
        return out
