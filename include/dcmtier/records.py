"""The records that several stages share: a study, one (source, tier) result, one study x tier
result, the status and strategy words they carry, and the file key that names a source file.

Everything here is plain data (no codec, no database), so the unit of work, the catalogue,
discovery and the benchmark can all import it without importing each other. The one I/O is
`file_key` hashing a file that has no usable SOP Instance UID.

Landing paths and file names often carry patient names, so a source file is named by its file
key wherever analysts, logs, XCom and command output see it; only the catalogue's operator
table ``file_locations`` maps a key back to where the file was found.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

# Status of one (source, tier).
OK, SKIPPED, REFUSED, FAILED = "ok", "skipped", "refused", "failed"
# A frame broke the tier's quality gate and the policy (on_gate_failure) said:
GATE_FAILED = "gate_failed"  # keep: the output is kept, flagged
REJECTED = "rejected"  # reject: the output is not kept (removed from derived/, not packaged)
# (fallback: the frame is recoded to meet the gate and the instance is ``ok``)
DUPLICATE = "duplicate"  # repeats another file's SOP Instance UID and pixel data: made once
CARRIED = "carried"  # not in this attempt; its verified output kept from an earlier one

# Status of one study x tier.
STUDY_OK, STUDY_PARTIAL, STUDY_FAILED = "ok", "partial", "failed"
STUDY_REJECTED = "rejected"  # every instance's output rejected by the gate, none failed

# Encode strategies: J2K rate tiers encoded one by one, or cut from one layered encode.
PER_TIER, LAYERED = "per_tier", "layered"
STRATEGIES = (PER_TIER, LAYERED)

KEY_DIGITS = 32  # hex digits of SHA-256 in a content key: 128 bits, no collision in any archive
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def is_valid_uid(text: str) -> bool:
    """A DICOM UID (PS3.5 9.1): digits in dot-separated components, no leading zero, <= 64."""
    return len(text) <= 64 and _UID.fullmatch(text) is not None


def file_key(path: Path, sop_uid: str | None = None) -> str:
    """The name of a source file in every output: its SOP Instance UID when that is a valid
    UID, else its content key (`content_key`).

    A file that cannot be read is named by a hash of its location instead (stable from run to
    run, and no more readable than a content hash).
    """
    if sop_uid and is_valid_uid(sop_uid):
        return sop_uid
    try:
        with path.open("rb") as handle:
            return content_key(handle)
    except OSError:
        return hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:KEY_DIGITS]


def content_key(handle: BinaryIO) -> str:
    """The first `KEY_DIGITS` hex digits of the SHA-256 of everything ``handle`` reads."""
    digest = hashlib.sha256()
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()[:KEY_DIGITS]


def name_by_key(text: str, location: Path | str, key: str) -> str:
    """``text`` with every spelling of ``location`` (as given, absolute, as a file URI)
    replaced by ``key``: messages from libraries name files by path."""
    forms = {str(location)}
    if isinstance(location, Path):
        forms |= {str(location.absolute()), location.absolute().as_uri()}
    for form in sorted(forms, key=len, reverse=True):
        if form:
            text = text.replace(form, key)
    return text


@dataclass(frozen=True)
class Known:
    """What the catalogue's source rows need of one file, known without reading it again (a
    study's tier tasks take it from the source cache, ``work.sources``)."""

    fields: dict[str, Any]  # `catalogue.sources.header_fields`
    size: int
    sha256: str


@dataclass(frozen=True)
class Study:
    """Files that share a StudyInstanceUID (from their headers, not their folders)."""

    uid: str
    files: tuple[Path, ...]
    sop_uids: Mapping[Path, str]
    uris: Mapping[Path, str] = field(default_factory=dict)  # recorded location, if not the path
    keys: Mapping[Path, str] = field(default_factory=dict)  # file keys known from discovery

    def uri(self, path: Path) -> str:
        """Where the catalogue's operator table records ``path`` (a staged copy may stand in
        for a remote file)."""
        return self.uris.get(path) or path.absolute().as_uri()

    def key(self, path: Path) -> str:
        """The file key of ``path`` (`file_key`)."""
        return self.keys.get(path) or file_key(path, self.sop_uids.get(path))


@dataclass(frozen=True)
class Unidentified:
    """A file whose header gives no StudyInstanceUID.

    ``reason`` names it by ``key``; ``uri`` (where it was found) goes to the catalogue's
    operator table only, and ``path`` is the local file when there is one (to quarantine).
    """

    key: str
    uri: str
    reason: str
    path: Path | None = None
    status: str = FAILED  # or SKIPPED: not a DICOM file, or a DICOMDIR


@dataclass
class TierResult:
    """What happened to one (source, tier); the ``--json`` line of ``dcmtier compress``.

    ``source`` is the source's file key; ``path`` (where it was read) stays in memory, out of
    `as_dict`, unless the caller asks for paths.
    """

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
    # time of each step outside the codec: read (the file's read, shared by its tiers),
    # header (the output's header and buffer), write (file, rename), verify (read back and
    # compare, without the decode), decode
    steps_ms: dict[str, float] = field(default_factory=dict)
    # the peak resident memory of the process that made this source's tiers, when it had
    # made them (baseline included; the process's peak so far): `dcmtier.work.peak`
    peak_rss_bytes: int | None = None
    encodes: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    gate: str | None = None  # the quality rule broken, with its numbers
    gate_action: str | None = None  # what on_gate_failure did about it (None: no frame broke)
    fallback_frames: int = 0  # frames recoded at a lower ratio to meet the gate
    frame_metrics: list[dict[str, Any]] = field(default_factory=list)  # by gating.measure
    path: str | None = field(default=None, repr=False)  # the source file read (landing path)
    # the source series' `dcmtier.descriptors`, for the quality rows (not in `as_dict`)
    descriptors: dict[str, str | None] = field(default_factory=dict, repr=False)

    def as_dict(self, *, paths: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out.pop("descriptors")
        if not paths:
            out.pop("path")
        return out


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
    gate_outcomes: dict[str, int] = field(default_factory=dict)  # frames per on_gate_failure
    carried: list[str] = field(default_factory=list)  # source SOP UIDs kept from earlier attempts
    results: list[TierResult] = field(default_factory=list, repr=False)
    done_by: str | None = None  # another run that finished it meanwhile (same inputs)
    # the highest peak resident memory of its instances' work and of its Parquet and ZIP
    peak_rss_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("results")
        return out


def outcome_text(status: str, counts: Mapping[str, int], instances: int) -> str:
    """A study x tier's outcome in a few words, as the Airflow grid and the pages show it.

    ``ok 10/10``, ``partial 7/10``, ``partial 7/10 · 3 below gate``, ``failed 0/10``: the
    status, the instances packaged (made now, or carried over from the study's package) out of
    those with pixel data, then what kept the others out (failed, below the quality gate,
    refused by policy, a duplicate of another file: ``ok 10/10 · 1 duplicate``).
    """
    packaged = counts.get(OK, 0) + counts.get(CARRIED, 0)
    judged = instances - counts.get(SKIPPED, 0) - counts.get(DUPLICATE, 0)
    words = [f"{status} {packaged}/{judged}"]
    words += [f"{n} {what}" for key, what in _KEPT_OUT if (n := counts.get(key, 0))]
    return " · ".join(words)


_KEPT_OUT = (
    (FAILED, "failed"),
    (GATE_FAILED, "below gate"),
    (REFUSED, "refused"),
    (DUPLICATE, "duplicate"),
)
