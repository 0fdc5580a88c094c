"""Which study x tier pairs a run takes, chosen in SQL on the landing index, and claimed.

A study is a candidate when its files are present under the run's landing scopes (and it is one
of the run's ``study_uids``, when the run names some), it is settled (no file modified after
``settled_before``), and it falls in the run's interval by ``select_by`` (group 0) or in an
earlier one (group 1, the backlog). A pair is to do when its latest attempt does not rule it out
and no other run holds a live claim on it. An attempt that never finished is never done,
whatever ``reprocess`` says: ``abandoned`` (its owner died), ``interrupted`` (SIGINT, SIGTERM),
or ``running`` with its lease expired (an owner gone that no run has marked yet); a ``running``
attempt whose owner renews its lease is never taken. A finished attempt rules the pair out
unless ``reprocess`` takes its status again: ``failed`` retakes ``failed`` and ``partial``,
``all`` every finished status. ``rejected`` (every output rejected by the quality gate) is a
final quality outcome, retaken by ``all`` only. Studies are taken in a stable order up to the
run's capacity: the interval's oldest first, then the backlog's most recent first, so that
overlapping backfill runs serve their own intervals before reaching into each other's.

Claims are taken with ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` (free, expired or already
this run's), ``RETURNING`` what this run got: two runs planning at once never both get a pair.
A run that is gone gives its claims up before any selection: a run with an attempt that never
finished (abandoned, interrupted, or a lapsed lease) and none running under a live lease, such
as a run whose process was killed before its tasks could release their claims.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    and_,
    case,
    delete,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite

from dcmtier.catalogue.landing import FILES, under
from dcmtier.catalogue.models import Claim, Job
from dcmtier.catalogue.ownership import NOT_DONE, RUNNING
from dcmtier.catalogue.writes import chunks

INTERVAL, BACKLOG = 0, 1
# finished statuses that a run takes again, by ``reprocess`` (unfinished ones always)
RERUN = {
    "none": (),
    "failed": ("failed", "partial"),
    "all": ("ok", "failed", "partial", "rejected"),
}
REFILLS = 5  # selections after losing pairs to a concurrent run


@dataclass(frozen=True)
class Selection:
    """One run's question to the index, read at the edge from the DAG's params."""

    scopes: Sequence[str]
    tiers: Sequence[str]
    run_id: str
    now: datetime
    settled_before: datetime
    capacity: int
    expires_at: datetime
    select_by: str = "arrival"
    interval: tuple[datetime, datetime] | None = None
    reprocess: str = "none"
    study_uids: Sequence[str] = ()  # only these studies (an operator's retry); empty: all


@dataclass
class Selected:
    """The pairs this run claimed, per study in planning order, and what waits."""

    pairs: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    studies_present: int = 0
    unsettled: int = 0
    later: int = 0
    studies_to_do: int = 0
    released: dict[str, int] = field(default_factory=dict)  # claims given up, by gone run

    @property
    def waiting(self) -> int:
        """Studies with work left that this run did not take (capacity, or claimed elsewhere)."""
        return max(0, self.studies_to_do - len(self.pairs))


def select_and_claim(connection: Connection, request: Selection) -> Selected:
    """Choose this run's pairs and claim them, in the caller's transaction."""
    result = _census(connection, request)
    result.released = _release_gone_runs(connection, request)
    for _ in range(REFILLS):
        order = _study_order(connection, request)
        result.studies_to_do = len(order)
        wanted = order[: request.capacity]
        todo = _todo_pairs(connection, request, [uid for uid, _ in wanted])
        claimed = _claim(connection, request, todo)
        result.pairs = {uid: claimed[uid] for uid, _ in wanted if claimed.get(uid)}
        result.groups = {uid: group for uid, group in wanted if uid in result.pairs}
        if len(result.pairs) == len(wanted):
            break
    return result


def release(connection: Connection, run_id: str, pairs: Sequence[tuple[str, str]] = ()) -> int:
    """Drop ``run_id``'s claims (only ``pairs`` when given); return how many went."""
    table = Claim.__table__
    if not pairs:
        return int(connection.execute(delete(Claim).where(table.c.run_id == run_id)).rowcount)
    gone = 0
    for chunk in chunks(sorted(pairs)):
        gone += connection.execute(
            delete(Claim).where(
                table.c.run_id == run_id,
                or_(*(and_(table.c.study_uid == s, table.c.tier == t) for s, t in chunk)),
            )
        ).rowcount
    return int(gone)


def _studies(request: Selection) -> Any:
    only = FILES.c.study_uid.in_(sorted(set(request.study_uids))) if request.study_uids else true()
    return (
        select(
            FILES.c.study_uid.label("study_uid"),
            func.min(FILES.c.study_date).label("study_date"),
            func.max(FILES.c.modified).label("arrival"),
        )
        .where(
            FILES.c.gone_at.is_(None), FILES.c.study_uid.is_not(None), under(request.scopes), only
        )
        .group_by(FILES.c.study_uid)
        .subquery("present")
    )


def _group(request: Selection, studies: Any) -> tuple[Any, Any]:
    """(group, key): group 0 in the interval, 1 earlier (the backlog), NULL later.

    A manual run (no interval) takes every study as group 0. Reprocessing everything stays
    within the interval: the backlog is for work never done.
    """
    key = studies.c.study_date if request.select_by == "study_date" else studies.c.arrival
    if request.interval is None:
        return literal(INTERVAL), key
    start, end = request.interval
    if request.select_by == "study_date":
        first = start.date()
        last = max(first, (end - timedelta(microseconds=1)).date())
        inside, early = and_(key >= first, key <= last), or_(key.is_(None), key < first)
    else:
        inside, early = and_(key >= start, key < end), key < start
    if request.reprocess == "all":
        early = false()
    return case((inside, INTERVAL), (early, BACKLOG), else_=null()), key


def _census(connection: Connection, request: Selection) -> Selected:
    studies = _studies(request)
    group, _ = _group(request, studies)
    settled = studies.c.arrival <= request.settled_before
    row = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((settled, 0), else_=1)), 0),
            func.coalesce(func.sum(case((and_(settled, group.is_(None)), 1), else_=0)), 0),
        ).select_from(studies)
    ).one()
    return Selected(studies_present=int(row[0]), unsettled=int(row[1]), later=int(row[2]))


def _wanted_tiers(tiers: Sequence[str]) -> Any:
    parts = [select(literal(t, String(32)).label("tier")) for t in dict.fromkeys(tiers)]
    return union_all(*parts).subquery("wanted")


def _live(request: Selection, jobs: Any) -> Any:
    """A running attempt whose owner still renews its lease (a NULL lease is not)."""
    return and_(jobs.c.status == RUNNING, jobs.c.lease_expires_at >= request.now)


def _unfinished(request: Selection, jobs: Any) -> Any:
    """An attempt that never finished: abandoned, interrupted, or running with a lapsed lease."""
    lease = jobs.c.lease_expires_at
    lapsed = and_(jobs.c.status == RUNNING, or_(lease.is_(None), lease < request.now))
    return or_(jobs.c.status.in_(sorted(NOT_DONE)), lapsed)


def _blocked(request: Selection, study_uid: Any, tier: Any) -> Any:
    """True when the latest attempt or another run's live claim rules the pair out."""
    earlier, attempt = Job.__table__.alias("earlier"), Job.__table__.alias("attempt")
    latest = (
        select(earlier.c.id)
        .where(earlier.c.study_uid == study_uid, earlier.c.tier == tier)
        .order_by(earlier.c.started_at.desc(), earlier.c.id.desc())
        .limit(1)
        .correlate_except(earlier)
        .scalar_subquery()
    )
    finished = attempt.c.status.not_in((RUNNING, *sorted(NOT_DONE)))
    rerun = RERUN[request.reprocess]
    kept = and_(finished, attempt.c.status.not_in(rerun)) if rerun else finished
    ruled_out = (
        select(literal(1))
        .where(attempt.c.id == latest, or_(_live(request, attempt), kept))
        .correlate_except(attempt)
        .exists()
    )
    claims = Claim.__table__
    claimed = (
        select(literal(1))
        .where(
            claims.c.study_uid == study_uid,
            claims.c.tier == tier,
            claims.c.run_id != request.run_id,
            claims.c.expires_at > request.now,
        )
        .correlate_except(claims)
        .exists()
    )
    return or_(ruled_out, claimed)


def _release_gone_runs(connection: Connection, request: Selection) -> dict[str, int]:
    """Delete the claims of other runs that are gone (see the module docstring); how many, by
    run. The caller marks attempts of dead owners abandoned first (``Catalogue.reap``)."""
    claims = Claim.__table__
    holders = connection.execute(
        select(claims.c.run_id)
        .where(claims.c.run_id != request.run_id, claims.c.expires_at > request.now)
        .distinct()
    ).scalars()
    jobs = Job.__table__
    released: dict[str, int] = {}
    for run_id in sorted(holders):
        ended = select(literal(1)).where(jobs.c.run_id == run_id, _unfinished(request, jobs))
        working = select(literal(1)).where(jobs.c.run_id == run_id, _live(request, jobs))
        if connection.execute(select(and_(ended.exists(), ~working.exists()))).scalar():
            gone = connection.execute(delete(Claim).where(claims.c.run_id == run_id)).rowcount
            released[str(run_id)] = int(gone)
    return released


def _study_order(connection: Connection, request: Selection) -> list[tuple[str, int]]:
    """Every candidate study with a pair to do, in planning order."""
    studies = _studies(request)
    wanted = _wanted_tiers(request.tiers)
    group, key = _group(request, studies)
    open_pair = (
        select(literal(1))
        .select_from(wanted)
        .where(~_blocked(request, studies.c.study_uid, wanted.c.tier))
        .exists()
    )
    query = (
        select(studies.c.study_uid, group.label("grp"))
        .where(studies.c.arrival <= request.settled_before, group.is_not(None), open_pair)
        .order_by(
            group,
            case((group == INTERVAL, key)).asc(),
            case((group == BACKLOG, key)).desc(),
            studies.c.study_uid,
        )
    )
    return [(str(uid), int(grp)) for uid, grp in connection.execute(query)]


def _todo_pairs(
    connection: Connection, request: Selection, study_uids: Sequence[str]
) -> list[tuple[str, str]]:
    wanted = _wanted_tiers(request.tiers)
    order = {t: i for i, t in enumerate(request.tiers)}
    found: list[tuple[str, str]] = []
    for chunk in chunks(list(study_uids)):
        uids = union_all(
            *(select(literal(u, String(64)).label("study_uid")) for u in chunk)
        ).subquery("chosen")
        query = (
            select(uids.c.study_uid, wanted.c.tier)
            .select_from(uids.join(wanted, true()))
            .where(~_blocked(request, uids.c.study_uid, wanted.c.tier))
        )
        found += [(str(s), str(t)) for s, t in connection.execute(query)]
    return sorted(found, key=lambda pair: (pair[0], order[pair[1]]))


def _claim(
    connection: Connection, request: Selection, pairs: Sequence[tuple[str, str]]
) -> dict[str, list[str]]:
    """Claim ``pairs`` for the run; return those it holds now, per study in tier order."""
    insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[
        connection.dialect.name
    ]
    table = Claim.__table__
    held: dict[str, list[str]] = defaultdict(list)
    rows = [
        {"study_uid": s, "tier": t, "run_id": request.run_id, "claimed_at": request.now,
         "expires_at": request.expires_at}
        for s, t in pairs
    ]  # fmt: skip
    for chunk in chunks(rows):
        statement = insert(Claim).values(chunk)
        statement = statement.on_conflict_do_update(
            index_elements=["study_uid", "tier"],
            set_={c: statement.excluded[c] for c in ("run_id", "claimed_at", "expires_at")},
            where=or_(table.c.expires_at <= request.now, table.c.run_id == request.run_id),
        ).returning(table.c.study_uid, table.c.tier)
        for study_uid, tier in connection.execute(statement):
            held[str(study_uid)].append(str(tier))
    order = {t: i for i, t in enumerate(request.tiers)}
    return {uid: sorted(tiers, key=order.__getitem__) for uid, tiers in held.items()}
