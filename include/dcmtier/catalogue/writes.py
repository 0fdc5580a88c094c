"""Making one study x tier's rows describe its latest attempt: upsert what it made, remove or
resolve what it no longer makes."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, delete, insert, select, update

from dcmtier.catalogue.models import DerivedInstance, FailureRecord, FrameQuality, Package, utcnow
from dcmtier.catalogue.results import DerivedRows
from dcmtier.catalogue.upsert import upsert
from dcmtier.records import StudyTierResult

T = TypeVar("T")
CHUNK = 500  # keys per IN (...) list
FAILURE_KEY = ("study_uid", "tier", "source_key")


def replace_derived(
    connection: Connection,
    study_uid: str,
    tier: str,
    derived: list[DerivedRows],
    carried: Collection[str] = (),
) -> None:
    """Make the pair's derived rows ``derived`` plus the ``carried`` ones (source SOP UIDs
    whose outputs an earlier attempt made and this one kept: their rows stay as they are)."""
    pair = (DerivedInstance.study_uid == study_uid) & (DerivedInstance.tier == tier)
    remade = sorted({d.instance["source_sop_uid"] for d in derived})
    for chunk in chunks(remade):
        of_chunk = select(DerivedInstance.id).where(pair, DerivedInstance.source_sop_uid.in_(chunk))
        connection.execute(delete(FrameQuality).where(FrameQuality.derived_id.in_(of_chunk)))
    existing = _derived_ids(connection, pair)
    current = {d.instance["source_sop_uid"] for d in derived} | set(carried)
    stale = sorted(i for sop, i in existing.items() if sop not in current)
    for chunk in chunks(stale):
        connection.execute(delete(FrameQuality).where(FrameQuality.derived_id.in_(chunk)))
        connection.execute(delete(DerivedInstance).where(DerivedInstance.id.in_(chunk)))
    upsert(
        connection, DerivedInstance, [d.instance for d in derived], keys=["source_sop_uid", "tier"]
    )
    ids = _derived_ids(connection, pair)
    frames = [
        {**frame, "derived_id": ids[d.instance["source_sop_uid"]]}
        for d in derived
        for frame in d.frames
    ]
    if frames:
        connection.execute(insert(FrameQuality), frames)


def _derived_ids(connection: Connection, pair: ColumnElement[bool]) -> dict[str, int]:
    query = select(DerivedInstance.source_sop_uid, DerivedInstance.id).where(pair)
    return {sop: derived_id for sop, derived_id in connection.execute(query)}


def replace_package(
    connection: Connection, result: StudyTierResult, row: dict[str, Any] | None
) -> None:
    if row is None:
        connection.execute(
            delete(Package).where(
                Package.study_uid == result.study_uid, Package.tier == result.tier
            )
        )
        return
    upsert(connection, Package, [row], keys=["study_uid", "tier"])


def replace_failures(
    connection: Connection,
    study_uid: str,
    tier: str,
    current: list[dict[str, Any]],
    judged: Collection[str] | None = None,
) -> None:
    """Upsert today's failures; mark resolved the pair's others that this attempt judged
    (``judged``: the keys of the instances it processed, and the attempt's own key) and that
    no longer fail. Failures of instances it did not process stay open. ``judged`` None:
    every other open failure of the pair is resolved."""
    upsert(connection, FailureRecord, current, keys=FAILURE_KEY, keep=["first_seen_at"])
    keys = {row["source_key"] for row in current}
    open_rows = connection.execute(
        select(FailureRecord.id, FailureRecord.source_key).where(
            FailureRecord.study_uid == study_uid,
            FailureRecord.tier == tier,
            FailureRecord.resolved_at.is_(None),
        )
    )
    resolved = sorted(
        i for i, key in open_rows if key not in keys and (judged is None or key in judged)
    )
    now = utcnow()
    for chunk in chunks(resolved):
        connection.execute(
            update(FailureRecord).where(FailureRecord.id.in_(chunk)).values(resolved_at=now)
        )


def chunks(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
