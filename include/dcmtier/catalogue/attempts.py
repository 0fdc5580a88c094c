"""Reads of the recorded attempts that work units need: how long past attempts took (to fit
the cost model) and which of a unit's study x tier pairs a run already finished (so that a
cleared unit redoes only the rest).

Plain reads on a connection the caller opens (``Catalogue.engine``); nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select

from dcmtier.catalogue.models import Instance, Job
from dcmtier.catalogue.writes import chunks

HISTORY = 2000  # most recent finished attempts a cost fit reads
# finished with a result: a cleared unit does not make these again in the same run
RESULT_STATUSES = ("ok", "partial", "rejected")


def durations(connection: Connection, limit: int = HISTORY) -> list[tuple[int, int, float]]:
    """``(instances, stored bytes, seconds)`` of the latest ``limit`` attempts that finished
    with a result, their study's bytes from the recorded instances."""
    sizes = (
        select(Instance.study_uid, func.sum(Instance.bytes).label("bytes"))
        .group_by(Instance.study_uid)
        .subquery()
    )
    query = (
        select(Job.instances, sizes.c.bytes, Job.started_at, Job.finished_at)
        .join(sizes, sizes.c.study_uid == Job.study_uid)
        .where(Job.status.in_(RESULT_STATUSES), Job.finished_at.is_not(None))
        .order_by(Job.finished_at.desc())
        .limit(limit)
    )
    return [
        (int(n or 0), int(size or 0), _seconds(started, finished))
        for n, size, started, finished in connection.execute(query)
    ]


def tier_seconds(
    connection: Connection, tiers: Sequence[str], limit: int = HISTORY
) -> dict[str, float]:
    """The median seconds of each of ``tiers``' latest ``limit`` attempts that finished with a
    result; a tier never attempted is absent."""
    found: dict[str, float] = {}
    for tier in tiers:
        query = (
            select(Job.started_at, Job.finished_at)
            .where(Job.tier == tier, Job.status.in_(RESULT_STATUSES), Job.finished_at.is_not(None))
            .order_by(Job.finished_at.desc())
            .limit(limit)
        )
        seconds = sorted(_seconds(a, b) for a, b in connection.execute(query) if b is not None)
        if seconds:
            found[tier] = seconds[len(seconds) // 2]
    return found


def finished_in_run(
    connection: Connection, run_id: str, study_uids: Sequence[str], tier: str
) -> set[str]:
    """The studies of ``study_uids`` whose latest attempt at ``tier`` is this run's and
    finished with a result (ok, partial, rejected): what a cleared unit task skips. A failed,
    interrupted, abandoned or still running latest attempt is done again."""
    done: set[str] = set()
    for chunk in chunks(sorted(set(study_uids))):
        latest = (
            select(
                Job.study_uid,
                Job.run_id,
                Job.status,
                func.row_number()
                .over(partition_by=Job.study_uid, order_by=(Job.started_at.desc(), Job.id.desc()))
                .label("position"),
            )
            .where(Job.study_uid.in_(chunk), Job.tier == tier)
            .subquery()
        )
        query = select(latest.c.study_uid).where(
            latest.c.position == 1,
            latest.c.run_id == run_id,
            latest.c.status.in_(RESULT_STATUSES),
        )
        done.update(str(uid) for (uid,) in connection.execute(query))
    return done


def _seconds(started: datetime, finished: datetime) -> float:
    return max(0.0, (finished - started).total_seconds())
