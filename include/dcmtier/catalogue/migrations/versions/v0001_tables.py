"""The catalogue tables: sources, tiers, attempts, derived instances, quality, packages, failures.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UID = sa.String(64)
AIRFLOW_ID = sa.String(250)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column[int]:
    return sa.Column("id", BIG_ID, primary_key=True, autoincrement=True, nullable=False)


def _fk(column: str, target: str, table: str) -> sa.ForeignKeyConstraint:
    referred = target.split(".", maxsplit=1)[0]
    return sa.ForeignKeyConstraint([column], [target], name=op.f(f"fk_{table}_{column}_{referred}"))


def upgrade() -> None:
    _sources()
    op.create_table(
        "tiers",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("lossless", sa.Boolean(), nullable=False),
        sa.Column("target_ratio", sa.Double(), nullable=True),
        sa.Column("near", sa.Integer(), nullable=False),
        sa.Column("transfer_syntax", UID, nullable=False),
        sa.Column("use", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tiers")),
    )
    _jobs()
    _derived()
    _packages_and_failures()


def _sources() -> None:
    op.create_table(
        "studies",
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("modalities", sa.String(64), nullable=False),
        _time("first_seen_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("study_uid", name=op.f("pk_studies")),
    )
    op.create_table(
        "series",
        sa.Column("series_uid", UID, nullable=False),
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("series_uid", name=op.f("pk_series")),
        _fk("study_uid", "studies.study_uid", "series"),
    )
    op.create_table(
        "instances",
        sa.Column("sop_uid", UID, nullable=False),
        sa.Column("series_uid", UID, nullable=False),
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("sop_class_uid", UID, nullable=True),
        sa.Column("file_uri", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("transfer_syntax", UID, nullable=True),
        *(
            sa.Column(name, sa.Integer(), nullable=True)
            for name in ("rows", "columns", "frames", "bits_allocated", "bits_stored")
        ),
        sa.Column("photometric", sa.String(32), nullable=True),
        _time("discovered_at"),
        sa.PrimaryKeyConstraint("sop_uid", name=op.f("pk_instances")),
        _fk("series_uid", "series.series_uid", "instances"),
        _fk("study_uid", "studies.study_uid", "instances"),
    )
    op.create_index(op.f("ix_instances_study_uid"), "instances", ["study_uid"])


def _jobs() -> None:
    op.create_table(
        "jobs",
        _id(),
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("dag_id", AIRFLOW_ID, nullable=False),
        sa.Column("run_id", AIRFLOW_ID, nullable=False),
        sa.Column("task_id", AIRFLOW_ID, nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("instances", sa.Integer(), nullable=True),
        sa.Column("counts", DOCUMENT, nullable=True),
        sa.Column("software", DOCUMENT, nullable=False),
        sa.Column("parameters", DOCUMENT, nullable=False),
        _time("started_at"),
        _time("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint(
            "study_uid",
            "tier",
            "dag_id",
            "run_id",
            "task_id",
            "map_index",
            "try_number",
            name=op.f("uq_jobs_study_uid"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'ok', 'partial', 'failed')", name=op.f("ck_jobs_status")
        ),
        _fk("study_uid", "studies.study_uid", "jobs"),
        _fk("tier", "tiers.name", "jobs"),
    )
    op.create_index(op.f("ix_jobs_study_uid_tier"), "jobs", ["study_uid", "tier"])


def _derived() -> None:
    op.create_table(
        "derived_instances",
        _id(),
        sa.Column("source_sop_uid", UID, nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("series_uid", UID, nullable=False),
        sa.Column("derived_sop_uid", UID, nullable=False),
        sa.Column("job_id", BIG_ID, nullable=False),
        sa.Column("output_uri", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("pixel_bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("pixel_bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("pixel_ratio", sa.Double(), nullable=False),
        sa.Column("file_ratio", sa.Double(), nullable=False),
        sa.Column("psnr_min", sa.Double(), nullable=True),
        sa.Column("ssim_min", sa.Double(), nullable=True),
        sa.Column("max_abs_diff", sa.Double(), nullable=True),
        sa.Column("gate_passed", sa.Boolean(), nullable=False),
        sa.Column("gate", sa.Text(), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_instances")),
        sa.UniqueConstraint(
            "source_sop_uid", "tier", name=op.f("uq_derived_instances_source_sop_uid")
        ),
        _fk("source_sop_uid", "instances.sop_uid", "derived_instances"),
        _fk("tier", "tiers.name", "derived_instances"),
        _fk("study_uid", "studies.study_uid", "derived_instances"),
        _fk("job_id", "jobs.id", "derived_instances"),
    )
    op.create_index(
        op.f("ix_derived_instances_study_uid_tier"), "derived_instances", ["study_uid", "tier"]
    )
    op.create_index(
        op.f("ix_derived_instances_derived_sop_uid"), "derived_instances", ["derived_sop_uid"]
    )
    op.create_table(
        "frame_quality",
        sa.Column("derived_id", BIG_ID, nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Double(), nullable=False) for name in ("psnr_db", "psnr_peak")),
        sa.Column("ssim", sa.Double(), nullable=True),
        *(
            sa.Column(name, sa.Double(), nullable=False)
            for name in ("mse", "max_abs_diff", "mean_abs_diff", "pixel_match_pct")
        ),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("gate", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("derived_id", "frame", name=op.f("pk_frame_quality")),
        sa.ForeignKeyConstraint(
            ["derived_id"],
            ["derived_instances.id"],
            name=op.f("fk_frame_quality_derived_id_derived_instances"),
            ondelete="CASCADE",
        ),
    )


def _packages_and_failures() -> None:
    op.create_table(
        "packages",
        _id(),
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("job_id", BIG_ID, nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packages")),
        sa.UniqueConstraint("study_uid", "tier", name=op.f("uq_packages_study_uid")),
        _fk("study_uid", "studies.study_uid", "packages"),
        _fk("tier", "tiers.name", "packages"),
        _fk("job_id", "jobs.id", "packages"),
    )
    op.create_table(
        "failure_records",
        _id(),
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("source_key", sa.Text(), nullable=False),
        sa.Column("sop_uid", UID, nullable=True),
        sa.Column("file", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=True),
        sa.Column("job_id", BIG_ID, nullable=False),
        _time("first_seen_at"),
        _time("last_seen_at"),
        _time("resolved_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failure_records")),
        sa.UniqueConstraint(
            "study_uid", "tier", "source_key", name=op.f("uq_failure_records_study_uid")
        ),
        sa.CheckConstraint(
            "status IN ('failed', 'refused', 'gate_failed')", name=op.f("ck_failure_records_status")
        ),
        _fk("study_uid", "studies.study_uid", "failure_records"),
        _fk("tier", "tiers.name", "failure_records"),
        _fk("job_id", "jobs.id", "failure_records"),
    )


def downgrade() -> None:
    for table in (
        "failure_records",
        "packages",
        "frame_quality",
        "derived_instances",
        "jobs",
        "instances",
        "series",
        "studies",
        "tiers",
    ):
        op.drop_table(table)
