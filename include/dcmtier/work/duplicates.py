"""Files of one study that share a SOP Instance UID: one instance, or a conflict.

Real archives hold the same instance twice (a re-send, or the same image in two transfer
syntaxes). Files whose decoded stored values are identical are one instance: the first (in
the study's file order) is made, the others are ``duplicate``. Files whose pixel data differ
are a conflict: no one of them is the instance, so each ``failed``, with the reason naming
every file of the conflict by its content key, and the rest of the study goes on. A file that
cannot be read is left to fail on its own.

Files that share a SOP Instance UID share its file key (``records.file_key``), so here each is
told apart by its content key (``records.content_key``), and its failure row by the UID, that
content key and its place among the files: ``dcmtier locate <UID>`` lists every location.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from dcmtier.codec.pixels import read_source
from dcmtier.errors import DcmtierError
from dcmtier.records import DUPLICATE, FAILED, Study, TierResult, content_key
from dcmtier.tiers import Tier


@dataclass(frozen=True)
class LeftOut:
    """A file not made into outputs: a ``duplicate`` of another, or ``failed`` in a conflict."""

    path: Path
    sop_uid: str
    status: str
    reason: str
    key: str  # its failure key: the SOP UID and its content key (several files share the UID)

    def results(self, study: Study, tiers: list[Tier]) -> list[TierResult]:
        """One result per tier, named by the file's key (``Study.key``)."""
        error = "DuplicateInstance" if self.status == DUPLICATE else "ConflictingInstances"
        return [
            TierResult(
                study.key(self.path),
                tier.name,
                self.status,
                reason=self.reason,
                error=error,
                study_instance_uid=study.uid,
                sop_instance_uid_in=self.sop_uid,
                params={"key": self.key},
                path=str(self.path),
            )
            for tier in tiers
        ]


def split_duplicates(study: Study) -> tuple[tuple[Path, ...], list[LeftOut]]:
    """The files to make, and the files left out with their outcome."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in study.files:
        if uid := study.sop_uids.get(path):
            groups[uid].append(path)
    left: list[LeftOut] = []
    for uid, paths in groups.items():
        if len(paths) > 1:
            left += _judge(uid, paths)
    out = {item.path for item in left}
    return tuple(p for p in study.files if p not in out), left


def _judge(uid: str, paths: list[Path]) -> list[LeftOut]:
    digests = {p: _pixel_digest(p) for p in paths}
    readable = [p for p in paths if digests[p] is not None]
    if len(readable) < 2:
        return []
    keys = {p: _content_key(p) for p in readable}
    if len({digests[p] for p in readable}) == 1:
        kept = readable[0]
        return [
            LeftOut(
                p,
                uid,
                DUPLICATE,
                f"{uid}: file {keys[p]} repeats file {keys[kept]} (same SOP Instance UID, "
                "identical pixel data): made once",
                f"{uid} file {keys[p]} #{n}",  # byte-identical copies share a file key
            )
            for n, p in enumerate(readable[1:], start=1)
        ]
    listed = ", ".join(keys[p] for p in readable)
    return [
        LeftOut(
            p,
            uid,
            FAILED,
            f"{uid}: conflict: files {listed} share this SOP Instance UID with different "
            "pixel data; none is made until one is removed",
            f"{uid} file {keys[p]} #{n}",
        )
        for n, p in enumerate(readable)
    ]


def _content_key(path: Path) -> str:
    with path.open("rb") as handle:
        return content_key(handle)


def _pixel_digest(path: Path) -> str | None:
    """SHA-256 of the stored values and their layout; None when the file cannot be read."""
    try:
        source = read_source(path)
        digest = hashlib.sha256(repr(source.spec).encode())
        for frame in source.iter_frames():
            digest.update(frame.tobytes())
    except DcmtierError:
        return None
    except OSError:
        raise
    except Exception:
        return None
    return digest.hexdigest()
