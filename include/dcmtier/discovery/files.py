"""Local discovery for the command line: the files under some paths, grouped into studies by
the StudyInstanceUID in their headers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from dcmtier.discovery.landing import skip_reason
from dcmtier.errors import ConfigError
from dcmtier.records import SKIPPED, Study, Unidentified


def find_files(sources: Iterable[Path]) -> list[Path]:
    """Files named, and every regular file below folders named, in a stable order."""
    found: list[Path] = []
    for src in sources:
        if src.is_dir():
            found.extend(sorted(p for p in src.rglob("*") if p.is_file() and not _hidden(p, src)))
        elif src.exists():
            found.append(src)
        else:
            raise ConfigError(f"{src}: no such file or folder")
    return found


def discover(sources: Sequence[Path]) -> tuple[list[Study], list[Unidentified]]:
    """Group files by StudyInstanceUID, reading headers only (no pixel data)."""
    groups: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    unidentified: list[Unidentified] = []
    for path in find_files(sources):
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError) as exc:
            skip = skip_reason(None, exc)
            status, reason = (SKIPPED, skip) if skip else ("failed", _one_line(exc))
            unidentified.append(Unidentified(path, reason, status))
            continue
        if skip := skip_reason(ds, None):
            unidentified.append(Unidentified(path, skip, SKIPPED))
            continue
        study_uid = str(ds.get("StudyInstanceUID") or "")
        if not study_uid:
            unidentified.append(Unidentified(path, "no StudyInstanceUID in the header"))
            continue
        groups[study_uid].append((path, str(ds.get("SOPInstanceUID") or "")))
    studies = [
        Study(uid, tuple(p for p, _ in members), {p: sop for p, sop in members})
        for uid, members in sorted(groups.items())
    ]
    return studies, unidentified


def _one_line(exc: BaseException) -> str:
    return "no readable StudyInstanceUID: " + (" ".join(str(exc).split()) or type(exc).__name__)


def _hidden(path: Path, root: Path) -> bool:
    """Temporary and hidden files (ours are ``.name.tmp``) are never inputs."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)
