"""What one pass over a landing area did: the counts ``dcmtier discover --json`` reports, the
same for every kind of landing area (folders, object stores, DICOMweb archives)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class IndexStats:
    """What one pass over the landing area did (``dcmtier discover --json``)."""

    files_listed: int = 0
    headers_read: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_gone: int = 0
    unreadable: int = 0
    list_s: float = 0.0
    read_s: float = 0.0
    write_s: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}
