"""The catalogue: lineage and storage savings of every study x tier, in PostgreSQL or SQLite.

``Catalogue`` is the API the unit of work and the Airflow tasks call; the schema is made only
by the Alembic migrations under ``migrations/`` (``dcmtier db upgrade``).
"""

from __future__ import annotations

from dcmtier.catalogue.context import JobContext
from dcmtier.catalogue.engine import resolve_url
from dcmtier.catalogue.store import Catalogue
from dcmtier.errors import CatalogueError

__all__ = ["Catalogue", "CatalogueError", "JobContext", "resolve_url"]
