"""What ``dcmtier estimate`` reads and keeps: the landing index by study (its inventory), the
estimates (table ``estimates``, migration 0015) and the last one beside what was stored (view
``estimate_vs_actual``).

Functions over one connection, as `dcmtier.catalogue.attempts`: a command opens it with
``catalogue.engine.connect()`` (reads) or ``.begin()`` (the write).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, text

from dcmtier.catalogue.landing import FILES, under
from dcmtier.catalogue.models import Estimate

ESTIMATES = Estimate.__table__
COLUMNS = tuple(c.name for c in ESTIMATES.columns if c.name != "id")


@dataclass
class IndexedStudy:
    """A study of the landing index: its files' modalities, count, bytes and StudyDate."""

    uid: str
    modalities: Counter[str]
    instances: int = 0
    bytes: int = 0
    study_date: date | None = None

    @property
    def modality(self) -> str:
        """The study's most common modality (ties: name order); ``OT`` when none is known."""
        if not self.modalities:
            return "OT"
        return sorted(self.modalities.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def indexed_studies(connection: Connection, scopes: Sequence[str]) -> list[IndexedStudy]:
    """Every study with a present file under ``scopes``, in UID order."""
    query = select(FILES.c.study_uid, FILES.c.modality, FILES.c.size, FILES.c.study_date).where(
        under(scopes), FILES.c.gone_at.is_(None), FILES.c.study_uid.is_not(None)
    )
    found: dict[str, IndexedStudy] = {}
    for uid, modality, size, day in connection.execute(query):
        study = found.setdefault(uid, IndexedStudy(uid, Counter()))
        study.instances += 1
        study.bytes += int(size)
        if modality:
            study.modalities[str(modality).upper()] += 1
        if day is not None and (study.study_date is None or day < study.study_date):
            study.study_date = day
    return [found[uid] for uid in sorted(found)]


def save(
    connection: Connection, estimate_id: str, created_at: datetime,
    lines: Iterable[Mapping[str, Any]], common: Mapping[str, Any],
) -> int:  # fmt: skip
    """Insert the lines of one estimate; ``common`` (sample_studies, seed, slots) on each."""
    rows = [
        {k: {**line, **common}.get(k) for k in COLUMNS}
        | {"estimate_id": estimate_id, "created_at": created_at}
        for line in lines
    ]
    if rows:
        connection.execute(insert(Estimate), rows)
    return len(rows)


def versus_actual(connection: Connection) -> list[dict[str, Any]]:
    """The view ``estimate_vs_actual``: the latest estimate's tiers beside the stored bytes."""
    rows = connection.execute(text("SELECT * FROM estimate_vs_actual ORDER BY tier"))
    return [dict(row._mapping) for row in rows]


def latest_cost_model(connection: Connection) -> dict[str, float] | None:
    """The per-study cost model of the latest estimate (``study_s``, ``byte_s``,
    ``instance_s``), or None when no estimate has one."""
    query = (
        select(ESTIMATES.c.cost_study_s, ESTIMATES.c.cost_byte_s, ESTIMATES.c.cost_instance_s)
        .where(ESTIMATES.c.scope == "total", ESTIMATES.c.cost_study_s.is_not(None))
        .order_by(ESTIMATES.c.id.desc())
        .limit(1)
    )
    row = connection.execute(query).first()
    if row is None:
        return None
    study_s, byte_s, instance_s = row
    return {
        "study_s": float(study_s),
        "byte_s": float(byte_s or 0),
        "instance_s": float(instance_s or 0),
    }
