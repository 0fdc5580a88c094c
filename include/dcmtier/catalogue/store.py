"""The catalogue's public API: what the unit of work and the Airflow tasks call.

`Catalogue` is a facade over the catalogue's parts, one job each: what was found where
(`inventory`), attempts and their leases (`jobs`), the landing index (`landing`), a run's
claims (`claims`), the views read back (`reports`) and what was published to DICOMweb
archives (`publications`), all on one engine's transactions (`transactions`). It adds opening
a catalogue, its migrations and this process's holds.
"""

from __future__ import annotations

from dcmtier.catalogue import schema
from dcmtier.catalogue.claims import Claims
from dcmtier.catalogue.holds import Holds, holds_for
from dcmtier.catalogue.inventory import Inventory
from dcmtier.catalogue.jobs import Jobs
from dcmtier.catalogue.landing import LandingIndex
from dcmtier.catalogue.publications import Publications
from dcmtier.catalogue.reports import REPORT_VIEWS, VIEWS, Reports

__all__ = ["REPORT_VIEWS", "VIEWS", "Catalogue"]


class Catalogue(Inventory, Jobs, LandingIndex, Claims, Reports, Publications):
    """Lineage and storage savings of every study x tier, in PostgreSQL or SQLite."""

    @classmethod
    def connect(cls, url: str) -> Catalogue:
        """Open the catalogue at ``url``.

        Raises
        ------
        CatalogueError
            The database is unreachable or its schema is not at this code's head revision
            (the message says to run ``dcmtier db upgrade``).
        """
        return cls(schema.engine_at_head(url))

    @staticmethod
    def upgrade(url: str, revision: str = "head") -> None:
        """Apply the migrations (``dcmtier db upgrade``)."""
        schema.upgrade(url, revision)

    @staticmethod
    def downgrade(url: str, revision: str = "base") -> None:
        """Revert the migrations; ``base`` drops every catalogue table and view."""
        schema.downgrade(url, revision)

    def holds(self) -> Holds:
        """This process's exclusive holds on study x tier pairs of this catalogue."""
        return holds_for(self._engine)
