"""Lineage names the encode strategy and quality layer that made each derived instance.

``derived_instances`` gains ``strategy`` (``per_tier`` or ``layered``) and ``layer`` (the
1-based quality layer of the layered codestream the tier was cut at, 1 the most compressed;
NULL for ``per_tier``), and the ``lineage`` view shows both after its earlier columns.

Existing rows are backfilled from their job's ``parameters`` JSON, which has said since the
layered strategy came in which strategy, and which layer, the attempt planned for its tier.
That is the plan, not each instance's own record: an instance whose layered encode failed and
that was encoded on its own is backfilled ``layered`` all the same; the next run of its study x
tier writes the truth. Rows whose job parameters name no strategy (attempts made before the
layered strategy) keep NULL in both columns. The backfill is SQLAlchemy's JSON path
expression, rendered per engine (``->>`` on PostgreSQL, ``JSON_EXTRACT`` on SQLite).

The view is dropped before the columns change and made again after, on both engines (neither
drops or alters a column a view reads). Downgrade on SQLite needs ``ALTER TABLE ... DROP
COLUMN`` (SQLite 3.35 or later).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dcmtier.catalogue.migrations.versions.v0002_views import LINEAGE as LINEAGE_0002

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LAYERED = "layered"

LINEAGE = """
CREATE VIEW lineage AS
SELECT d.source_sop_uid AS source_sop_uid,
       d.derived_sop_uid AS derived_sop_uid,
       d.tier AS tier,
       j.run_id AS run_id,
       j.task_id AS task_id,
       j.try_number AS try_number,
       CAST(j.software AS TEXT) AS software,
       d.created_at AS created_at,
       d.strategy AS strategy,
       d.layer AS layer
FROM derived_instances d
JOIN jobs j ON j.id = d.job_id
"""

# Only the columns the backfill reads or writes, as they are at this revision.
_jobs = sa.table(
    "jobs",
    sa.column("id", sa.Integer()),
    sa.column("parameters", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
)
_derived = sa.table(
    "derived_instances",
    sa.column("job_id", sa.Integer()),
    sa.column("strategy", sa.String(16)),
    sa.column("layer", sa.SmallInteger()),
)


def upgrade() -> None:
    op.execute("DROP VIEW lineage")
    op.add_column("derived_instances", sa.Column("strategy", sa.String(16), nullable=True))
    op.add_column("derived_instances", sa.Column("layer", sa.SmallInteger(), nullable=True))
    _backfill()
    op.execute(LINEAGE)


def _backfill() -> None:
    def planned(key: str) -> sa.ScalarSelect[object]:
        value = _jobs.c.parameters[key]
        typed = value.as_integer() if key == "layer" else value.as_string()
        return sa.select(typed).where(_jobs.c.id == _derived.c.job_id).scalar_subquery()

    op.execute(_derived.update().values(strategy=planned("strategy")))
    op.execute(
        _derived.update().where(_derived.c.strategy == LAYERED).values(layer=planned("layer"))
    )


def downgrade() -> None:
    op.execute("DROP VIEW lineage")
    op.drop_column("derived_instances", "layer")
    op.drop_column("derived_instances", "strategy")
    op.execute(LINEAGE_0002)
