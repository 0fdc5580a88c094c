"""A run's claims on study x tier pairs: chosen and taken in one transaction, released when
the run is done with them (the SQL is `dcmtier.catalogue.selection`'s)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from dcmtier.catalogue import selection
from dcmtier.catalogue.models import TierRow
from dcmtier.catalogue.results import tier_row
from dcmtier.catalogue.transactions import Transactions
from dcmtier.catalogue.upsert import upsert
from dcmtier.tiers import TIERS


class Claims(Transactions):
    """Take and give up the pairs a run works on."""

    def claim_work(self, request: selection.Selection) -> selection.Selected:
        """Choose and claim a run's study x tier pairs on the landing index (one transaction;
        see ``dcmtier.catalogue.selection``). The tiers asked for are recorded in ``tiers``,
        which the ``backlog`` view counts pending tiers against."""

        def write(connection: Connection) -> selection.Selected:
            upsert(connection, TierRow, [tier_row(TIERS[n]) for n in request.tiers], keys=["name"])
            return selection.select_and_claim(connection, request)

        return self._write(write)

    def release_claims(self, run_id: str, pairs: Sequence[tuple[str, str]] = ()) -> int:
        """Release ``run_id``'s claims (only ``pairs`` when given); return how many."""
        return self._write(lambda connection: selection.release(connection, run_id, pairs))
