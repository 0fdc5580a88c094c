"""Alembic environment of the catalogue: the URL comes from the caller, never from a file.

``dcmtier.catalogue.schema.alembic_config`` builds the ``Config`` in code and puts the URL in
``config.attributes["url"]``; ``dcmtier db upgrade`` and the tests go through it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from dcmtier.catalogue.models import Base
from dcmtier.catalogue.schema import MIGRATION_LOCK, VERSION_TABLE


def _url() -> str:
    url = context.config.attributes.get("url")
    if not isinstance(url, str) or not url:
        raise RuntimeError("build the Alembic config with dcmtier.catalogue.schema.alembic_config")
    return url


def run_offline() -> None:
    """Print the SQL instead of running it (``alembic upgrade --sql``)."""
    context.configure(
        url=_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        version_table=VERSION_TABLE,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                version_table=VERSION_TABLE,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    # concurrent upgrades queue here until the first commits; the next ones
                    # then read the version it wrote (DDL is transactional on PostgreSQL)
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK}
                    )
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
