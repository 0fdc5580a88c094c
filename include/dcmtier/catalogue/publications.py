"""The catalogue's part for publishing: a tier's derived instances, and where each was stored.

``Publications.publishable`` lists what ``dcmtier publish`` may send: the derived instances the
catalogue records for the tiers asked for (the latest attempt's outputs, each written and
verified); ``record_publications`` upserts ``publications`` rows once the archive holds them;
``published`` is what the study page shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select

from dcmtier.catalogue.models import DerivedInstance, Publication
from dcmtier.catalogue.transactions import Transactions
from dcmtier.catalogue.upsert import upsert
from dcmtier.catalogue.writes import chunks

if TYPE_CHECKING:
    from sqlalchemy import Connection

DERIVED = DerivedInstance.__table__
PUBLISHED = Publication.__table__


@dataclass(frozen=True)
class Derived:
    """One derived instance of a tier, and where its file is."""

    study_uid: str
    series_uid: str
    tier: str
    sop_uid: str
    output_uri: str
    gate_passed: bool


@dataclass(frozen=True)
class Published:
    """A study x tier's instances held by one archive (the study page's rows)."""

    destination: str
    instances: int
    sent: int
    first_published_at: datetime
    last_checked_at: datetime


class Publications(Transactions):
    """What may be published, and what an archive was found to hold."""

    def publishable(
        self, tiers: Sequence[str], studies: Sequence[str] | None = None
    ) -> list[Derived]:
        """The derived instances of ``tiers`` (of ``studies`` when given), by study, tier,
        series and SOP Instance UID."""
        query = (
            select(
                DERIVED.c.study_uid, DERIVED.c.series_uid, DERIVED.c.tier,
                DERIVED.c.derived_sop_uid, DERIVED.c.output_uri, DERIVED.c.gate_passed,
            )
            .where(DERIVED.c.tier.in_(list(tiers)))
            .order_by(DERIVED.c.study_uid, DERIVED.c.tier, DERIVED.c.series_uid,
                      DERIVED.c.derived_sop_uid)
        )  # fmt: skip
        if studies is not None:
            query = query.where(DERIVED.c.study_uid.in_(list(studies)))
        with self._read() as connection:
            return [Derived(*row[:5], bool(row[5])) for row in connection.execute(query)]

    def record_publications(
        self, destination: str, held: Iterable[tuple[Derived, bool]], now: datetime
    ) -> None:
        """``held``: (instance, whether this publish sent it) for every instance the archive
        at ``destination`` now holds; first publication and ``sent`` are kept from the first
        row."""
        rows: list[dict[str, Any]] = [
            {"derived_sop_uid": d.sop_uid, "destination": destination, "study_uid": d.study_uid,
             "series_uid": d.series_uid, "tier": d.tier, "sent": sent,
             "first_published_at": now, "last_checked_at": now}
            for d, sent in held
        ]  # fmt: skip

        def write(connection: Connection) -> None:
            for chunk in chunks(rows):
                upsert(connection, Publication, chunk, keys=["derived_sop_uid", "destination"],
                       keep=["first_published_at", "sent"])  # fmt: skip

        self._write(write)


def published(connection: Connection, study_uid: str, tier: str) -> list[Published]:
    """Per archive, how many of a study x tier's instances it holds and since when."""
    query = (
        select(
            PUBLISHED.c.destination, func.count(), func.sum(case((PUBLISHED.c.sent, 1), else_=0)),
            func.min(PUBLISHED.c.first_published_at), func.max(PUBLISHED.c.last_checked_at),
        )
        .where(PUBLISHED.c.study_uid == study_uid, PUBLISHED.c.tier == tier)
        .group_by(PUBLISHED.c.destination)
        .order_by(PUBLISHED.c.destination)
    )  # fmt: skip
    return [
        Published(str(dest), int(count), int(sent or 0), first, last)
        for dest, count, sent, first, last in connection.execute(query)
    ]
