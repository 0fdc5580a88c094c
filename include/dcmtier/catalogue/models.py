"""The catalogue's tables: what was found, what each attempt made of it, and what it saved.

Every table has a natural key (UIDs, tier, Airflow task identity) that writes upsert on, so a
retried step never duplicates a row. No patient name or ID is stored, and source files are
named by their file key (``dcmtier.records.file_key``): landing paths, whose folder and file
names often carry patient names, are kept in the operators' tables only, ``file_locations``
(where each file a run planned was found) and the landing index ``landing_files`` (on
PostgreSQL the ``dcmtier_analyst`` role can read neither). The Alembic migrations in
``migrations/versions`` create exactly these tables (a test compares the two).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# An attempt whose owner died without a word is "abandoned" (found later, by its pid or its
# lease); one stopped by SIGINT or SIGTERM says so itself: "interrupted".
JOB_STATUSES = ("running", "ok", "partial", "failed", "abandoned", "interrupted", "rejected")
FAILURE_STATUSES = (
    "failed",
    "refused",
    "gate_failed",
    "abandoned",
    "interrupted",
    "rejected",
    "duplicate",
)

UID = String(64)  # DICOM UIDs are at most 64 characters
AIRFLOW_ID = String(250)  # Airflow's limit for dag_id, run_id and task_id
# BIGINT ids on PostgreSQL; SQLite assigns row ids only to a column typed exactly INTEGER.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")
DOCUMENT = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every engine, stored as UTC.

    PostgreSQL keeps the zone (``timestamptz``); SQLite keeps text without one, so values are
    written as UTC and read back with UTC attached.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive timestamp {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}  # noqa: RUF012


class Study(Base):
    """One StudyInstanceUID, as found in the landing area."""

    __tablename__ = "studies"

    study_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    modalities: Mapped[str] = mapped_column(String(64), nullable=False)  # e.g. "CT" or "CT,SR"
    first_seen_at: Mapped[datetime] = mapped_column(nullable=False)
    updated_at: Mapped[datetime] = mapped_column(nullable=False)


class Series(Base):
    __tablename__ = "series"

    series_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    study_uid: Mapped[str] = mapped_column(UID, ForeignKey("studies.study_uid"), nullable=False)
    modality: Mapped[str] = mapped_column(String(16), nullable=False)
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # what analysts group by (``dcmtier.descriptors``); no patient field, no day
    body_part: Mapped[str | None] = mapped_column(String(64), nullable=True)
    manufacturer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(64), nullable=True)
    study_month: Mapped[str | None] = mapped_column(String(7), nullable=True)  # YYYY-MM


class Instance(Base):
    """One source file, described from its header; ``bytes`` is its size on disk.

    Where it was found is in ``file_locations`` (its file key is ``sop_uid``).
    """

    __tablename__ = "instances"
    __table_args__ = (Index(None, "study_uid"),)

    sop_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    series_uid: Mapped[str] = mapped_column(UID, ForeignKey("series.series_uid"), nullable=False)
    study_uid: Mapped[str] = mapped_column(UID, ForeignKey("studies.study_uid"), nullable=False)
    sop_class_uid: Mapped[str | None] = mapped_column(UID, nullable=True)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    modality: Mapped[str] = mapped_column(String(16), nullable=False)
    transfer_syntax: Mapped[str | None] = mapped_column(UID, nullable=True)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    columns: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bits_allocated: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bits_stored: Mapped[int | None] = mapped_column(Integer, nullable=True)
    photometric: Mapped[str | None] = mapped_column(String(32), nullable=True)
    discovered_at: Mapped[datetime] = mapped_column(nullable=False)


class TierRow(Base):
    """A copy of one entry of ``dcmtier.tiers.TIERS``, so views can join on it."""

    __tablename__ = "tiers"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    codec: Mapped[str] = mapped_column(String(16), nullable=False)
    lossless: Mapped[bool] = mapped_column(Boolean, nullable=False)
    target_ratio: Mapped[float | None] = mapped_column(Double, nullable=True)
    near: Mapped[int] = mapped_column(Integer, nullable=False)
    transfer_syntax: Mapped[str] = mapped_column(UID, nullable=False)
    use: Mapped[str] = mapped_column(String(16), nullable=False)


class Job(Base):
    """One attempt at one study x tier; an Airflow retry (new try_number) is a new row.

    ``owner_*`` name the process doing it (host, pid, start in clock ticks since boot, see
    `dcmtier.owner`); it renews ``lease_expires_at`` while it works. A ``running`` attempt
    whose owner process is gone, or whose lease expired, is abandoned.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint(
            "study_uid", "tier", "dag_id", "run_id", "task_id", "map_index", "try_number"
        ),
        Index(None, "study_uid", "tier"),
        Index(None, "status"),
        CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    study_uid: Mapped[str] = mapped_column(UID, ForeignKey("studies.study_uid"), nullable=False)
    tier: Mapped[str] = mapped_column(String(32), ForeignKey("tiers.name"), nullable=False)
    dag_id: Mapped[str] = mapped_column(AIRFLOW_ID, nullable=False)  # "cli" when run by hand
    run_id: Mapped[str] = mapped_column(AIRFLOW_ID, nullable=False)
    task_id: Mapped[str] = mapped_column(AIRFLOW_ID, nullable=False)
    map_index: Mapped[int] = mapped_column(Integer, nullable=False)
    try_number: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    instances: Mapped[int | None] = mapped_column(Integer, nullable=True)
    counts: Mapped[dict[str, int] | None] = mapped_column(DOCUMENT, nullable=True)
    software: Mapped[dict[str, str]] = mapped_column(DOCUMENT, nullable=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(DOCUMENT, nullable=False)
    started_at: Mapped[datetime] = mapped_column(nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    owner_host: Mapped[str | None] = mapped_column(String(64), nullable=True)
    owner_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    owner_start: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


class DerivedInstance(Base):
    """A written and verified output of one source instance in one tier (latest attempt)."""

    __tablename__ = "derived_instances"
    __table_args__ = (
        UniqueConstraint("source_sop_uid", "tier"),
        Index(None, "study_uid", "tier"),
        Index(None, "derived_sop_uid"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    source_sop_uid: Mapped[str] = mapped_column(
        UID, ForeignKey("instances.sop_uid"), nullable=False
    )
    tier: Mapped[str] = mapped_column(String(32), ForeignKey("tiers.name"), nullable=False)
    study_uid: Mapped[str] = mapped_column(UID, ForeignKey("studies.study_uid"), nullable=False)
    series_uid: Mapped[str] = mapped_column(UID, nullable=False)
    derived_sop_uid: Mapped[str] = mapped_column(UID, nullable=False)
    job_id: Mapped[int] = mapped_column(BIG_ID, ForeignKey("jobs.id"), nullable=False)
    output_uri: Mapped[str] = mapped_column(Text, nullable=False)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    frames: Mapped[int] = mapped_column(Integer, nullable=False)
    pixel_bytes_in: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pixel_bytes_out: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pixel_ratio: Mapped[float] = mapped_column(Double, nullable=False)
    file_ratio: Mapped[float] = mapped_column(Double, nullable=False)
    psnr_min: Mapped[float | None] = mapped_column(Double, nullable=True)  # +inf when exact
    ssim_min: Mapped[float | None] = mapped_column(Double, nullable=True)
    max_abs_diff: Mapped[float | None] = mapped_column(Double, nullable=True)
    gate_passed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    gate: Mapped[str | None] = mapped_column(Text, nullable=True)  # the broken rule
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    # How it was encoded: "per_tier", or "layered" cut at ``layer`` (1-based, 1 the most
    # compressed). NULL strategy: made before 0004 by an attempt that named none.
    strategy: Mapped[str | None] = mapped_column(String(16), nullable=True)
    layer: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)  # NULL unless layered
    # frames recoded at a lower ratio to meet the gate (on_gate_failure fallback); 0007
    fallback_frames: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # the precision coded: above the source's Bits Stored when its stored values needed it
    bits_stored: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    # 0012: the codec and transfer syntax this instance was coded with (a choosing tier picks
    # them per instance); NULL for rows made before
    codec: Mapped[str | None] = mapped_column(String(16), nullable=True)
    transfer_syntax: Mapped[str | None] = mapped_column(UID, nullable=True)
    # 0013: the worst frame's PSNR and SSIM against its own data range (what gates judge);
    # NULL for rows made before
    psnr_range_min: Mapped[float | None] = mapped_column(Double, nullable=True)
    ssim_range_min: Mapped[float | None] = mapped_column(Double, nullable=True)


class FrameQuality(Base):
    """Per-frame metrics of a derived instance: what the median in ``quality_by_tier`` needs."""

    __tablename__ = "frame_quality"

    derived_id: Mapped[int] = mapped_column(
        BIG_ID, ForeignKey("derived_instances.id", ondelete="CASCADE"), primary_key=True
    )
    frame: Mapped[int] = mapped_column(Integer, primary_key=True)
    psnr_db: Mapped[float] = mapped_column(Double, nullable=False)
    psnr_peak: Mapped[float] = mapped_column(Double, nullable=False)
    ssim: Mapped[float | None] = mapped_column(Double, nullable=True)
    mse: Mapped[float] = mapped_column(Double, nullable=False)
    max_abs_diff: Mapped[float] = mapped_column(Double, nullable=False)
    mean_abs_diff: Mapped[float] = mapped_column(Double, nullable=False)
    pixel_match_pct: Mapped[float] = mapped_column(Double, nullable=False)
    unit: Mapped[str] = mapped_column(String(16), nullable=False)
    gate: Mapped[str | None] = mapped_column(Text, nullable=True)  # the rule the encode broke
    # 0007: the frame's achieved pixel ratio (NULL before), what on_gate_failure did with it
    # (NULL: it passed), and whether it was recoded to meet the gate
    pixel_ratio: Mapped[float | None] = mapped_column(Double, nullable=True)
    gate_action: Mapped[str | None] = mapped_column(String(16), nullable=True)
    fell_back: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    # 0013: PSNR (+inf when exact) and SSIM against the source frame's data range, and the
    # range in ``unit`` (dcmtier.measure.datarange); NULL for rows written before
    psnr_db_range: Mapped[float | None] = mapped_column(Double, nullable=True)
    ssim_range: Mapped[float | None] = mapped_column(Double, nullable=True)
    data_range: Mapped[float | None] = mapped_column(Double, nullable=True)


class Package(Base):
    """The ZIP of one study x tier (latest attempt)."""

    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("study_uid", "tier"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    study_uid: Mapped[str] = mapped_column(UID, ForeignKey("studies.study_uid"), nullable=False)
    tier: Mapped[str] = mapped_column(String(32), ForeignKey("tiers.name"), nullable=False)
    job_id: Mapped[int] = mapped_column(BIG_ID, ForeignKey("jobs.id"), nullable=False)
    uri: Mapped[str] = mapped_column(Text, nullable=False)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    member_count: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)


class FailureRecord(Base):
    """A failed, refused or gate-failed instance, or a failed attempt as a whole.

    ``source_key`` is the SOP Instance UID, else the file key, else ``""`` for an attempt that
    failed before any instance was judged; ``file`` is the file key (never a path). A later
    attempt that no longer fails sets ``resolved_at``; the ``failures`` view shows unresolved
    rows only.
    """

    __tablename__ = "failure_records"
    __table_args__ = (
        UniqueConstraint("study_uid", "tier", "source_key"),
        CheckConstraint(f"status IN {FAILURE_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    study_uid: Mapped[str] = mapped_column(UID, ForeignKey("studies.study_uid"), nullable=False)
    tier: Mapped[str] = mapped_column(String(32), ForeignKey("tiers.name"), nullable=False)
    source_key: Mapped[str] = mapped_column(Text, nullable=False)
    sop_uid: Mapped[str | None] = mapped_column(UID, nullable=True)
    file: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    rule: Mapped[str | None] = mapped_column(Text, nullable=True)
    job_id: Mapped[int] = mapped_column(BIG_ID, ForeignKey("jobs.id"), nullable=False)
    first_seen_at: Mapped[datetime] = mapped_column(nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)


class UnidentifiedFile(Base):
    """A landing-area file whose header gives no StudyInstanceUID: no study, no tier.

    ``file`` is its file key (a content hash unless it has a SOP Instance UID). It shows in
    the ``failures`` view (study and tier NULL) until a later discovery of the same landing
    area no longer finds it unidentified, which sets ``resolved_at``.
    """

    __tablename__ = "unidentified_files"

    file: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    first_seen_at: Mapped[datetime] = mapped_column(nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)


class FileLocation(Base):
    """Where a source file was found: the one table that holds landing paths, for operators.

    One row per (file key, location): the same key found in two places (a SOP Instance UID
    sent twice, a study copied to a second landing area) has two rows. ``dcmtier locate KEY``
    reads it; analysts' views never do, and on PostgreSQL the ``dcmtier_analyst`` role has no
    access to it (migration 0005). ``id`` is what discovery's manifests under ``work/`` hold
    instead of the location.
    """

    __tablename__ = "file_locations"
    __table_args__ = (UniqueConstraint("file_key", "uri"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    file_key: Mapped[str] = mapped_column(String(64), nullable=False)
    uri: Mapped[str] = mapped_column(Text, nullable=False)  # file:///... or s3://... as found
    first_seen_at: Mapped[datetime] = mapped_column(nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(nullable=False)


class LandingFile(Base):
    """One file of a landing area, as the last discovery listed it (the landing index).

    Discovery reads a file's header only when the file is new or its size, modification time
    or ETag changed; a file no longer listed gets ``gone_at``. ``file_key`` (the SOP Instance
    UID, else a content hash) is worked out at that read, so planning never hashes a file again.
    An operator table, like ``file_locations``: it holds landing paths, so no analyst view reads
    its ``uri`` and on PostgreSQL the ``dcmtier_analyst`` role has no access to it (migration
    0009). It is the listing discovery compares with, not where ``dcmtier locate`` looks: the
    files a run plans are recorded in ``file_locations``, and manifests hold those ids.
    """

    __tablename__ = "landing_files"
    __table_args__ = (Index(None, "study_uid"), Index(None, "study_date"))

    uri: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    modified: Mapped[datetime] = mapped_column(nullable=False)
    etag: Mapped[str | None] = mapped_column(String(128), nullable=True)
    file_key: Mapped[str] = mapped_column(String(64), nullable=False)
    study_uid: Mapped[str | None] = mapped_column(UID, nullable=True)
    series_uid: Mapped[str | None] = mapped_column(UID, nullable=True)
    sop_uid: Mapped[str | None] = mapped_column(UID, nullable=True)
    study_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    read_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_seen_at: Mapped[datetime] = mapped_column(nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(nullable=False)
    gone_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Claim(Base):
    """A study x tier that a run has planned: no other run plans it until the claim is
    released (the pair finished, the run's summary ran, or the run is gone: see
    ``dcmtier.catalogue.selection``) or has expired."""

    __tablename__ = "claims"

    study_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    tier: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(AIRFLOW_ID, nullable=False)
    claimed_at: Mapped[datetime] = mapped_column(nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)


class Publication(Base):
    """A derived instance stored into a DICOMweb archive (``dcmtier publish``, the DAG's
    ``publish_to``): which, where (the archive's URL, never credentials) and when.

    One row per (derived SOP Instance UID, destination): ``first_published_at`` is when dcmtier
    first found it there after sending it or finding it already stored, ``last_checked_at`` the
    last publish that found it there. ``sent`` says whether dcmtier sent it (False: the
    archive held it already)."""

    __tablename__ = "publications"
    __table_args__ = (Index(None, "study_uid", "tier"),)

    derived_sop_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    destination: Mapped[str] = mapped_column(String(512), primary_key=True)
    study_uid: Mapped[str] = mapped_column(UID, nullable=False)
    series_uid: Mapped[str] = mapped_column(UID, nullable=False)
    tier: Mapped[str] = mapped_column(String(32), nullable=False)
    sent: Mapped[bool] = mapped_column(Boolean, nullable=False)
    first_published_at: Mapped[datetime] = mapped_column(nullable=False)
    last_checked_at: Mapped[datetime] = mapped_column(nullable=False)


class ViewerCheck(Base):
    """What a web viewer made of a tier at its latest ``dcmtier viewer-check``: whether its
    codecs decode the tier's frames, exactly or not, how fast, and the median checked study's
    ZIP size, download and time to display (see ``dcmtier.viewer.check``)."""

    __tablename__ = "viewer_checks"

    tier: Mapped[str] = mapped_column(String(32), primary_key=True)
    viewer: Mapped[str] = mapped_column(String(64), primary_key=True)
    transfer_syntax: Mapped[str | None] = mapped_column(String(200), nullable=True)
    codec: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decodable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    bit_exact: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    max_abs_diff: Mapped[float | None] = mapped_column(Double, nullable=True)
    frames: Mapped[int] = mapped_column(nullable=False)
    studies: Mapped[int] = mapped_column(nullable=False)
    study_frames: Mapped[int] = mapped_column(nullable=False)
    decode_ms_median: Mapped[float | None] = mapped_column(Double, nullable=True)
    decode_ms_p95: Mapped[float | None] = mapped_column(Double, nullable=True)
    package_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    download_s_100mbps: Mapped[float | None] = mapped_column(Double, nullable=True)
    download_s_1gbps: Mapped[float | None] = mapped_column(Double, nullable=True)
    display_s_100mbps: Mapped[float | None] = mapped_column(Double, nullable=True)
    display_s_1gbps: Mapped[float | None] = mapped_column(Double, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    checked_at: Mapped[datetime] = mapped_column(nullable=False)


class Estimate(Base):
    """One line of a ``dcmtier estimate``: a tier, a tier x modality or the total (``scope``),
    every line of one estimate under its ``estimate_id`` (migration 0015). Counts and bytes
    are projected over the whole landing area from the estimate's sample."""

    __tablename__ = "estimates"
    __table_args__ = (Index(None, "estimate_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    estimate_id: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)  # tier, modality, total
    tier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    studies: Mapped[int] = mapped_column(Integer, nullable=False)
    source_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stored_bytes_low: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stored_bytes_high: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cpu_hours: Mapped[float | None] = mapped_column(Double, nullable=True)
    wall_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    wall_s_dag: Mapped[float | None] = mapped_column(Double, nullable=True)
    task_instances: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    metadata_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sample_studies: Mapped[int] = mapped_column(Integer, nullable=False)
    seed: Mapped[int] = mapped_column(Integer, nullable=False)
    slots: Mapped[int] = mapped_column(Integer, nullable=False)
    # the total line: seconds of one tier task's work on a study, fitted on the sample
    # (``dcmtier.discovery.units.CostModel``: study_s + byte_s x bytes + instance_s x files)
    cost_study_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    cost_byte_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    cost_instance_s: Mapped[float | None] = mapped_column(Double, nullable=True)
