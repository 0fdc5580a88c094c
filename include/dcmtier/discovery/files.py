"""Local discovery for the command line: the files under some paths, grouped into studies by
the StudyInstanceUID in their headers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from dcmtier.discovery.landing import skip_reason
from dcmtier.errors import ConfigError, one_line
from dcmtier.records import SKIPPED, Study, Unidentified, file_key, name_by_key


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
    """Group files by StudyInstanceUID, reading headers only (no pixel data).

    Every file gets its file key; reasons name files by key, never by path.
    """
    groups: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    unidentified: list[Unidentified] = []
    for path in find_files(sources):
        ds = None
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError) as exc:
            unidentified.append(_unidentified(path, "", exc, skip_reason(None, exc)))
            continue
        sop_uid = str(ds.get("SOPInstanceUID") or "")
        if skip := skip_reason(ds, None):
            unidentified.append(_unidentified(path, sop_uid, None, skip))
            continue
        study_uid = str(ds.get("StudyInstanceUID") or "")
        if not study_uid:
            unidentified.append(_unidentified(path, sop_uid, None, None))
            continue
        groups[study_uid].append((path, str(ds.get("SOPInstanceUID") or "")))
    studies = []
    for uid, members in sorted(groups.items()):
        sop_uids = {p: sop for p, sop in members}
        keys = {p: file_key(p, sop) for p, sop in members}
        studies.append(Study(uid, tuple(sop_uids), sop_uids, keys=keys))
    return studies, unidentified


def _unidentified(
    path: Path, sop_uid: str, exc: BaseException | None, skip: str | None
) -> Unidentified:
    """A file that is no instance of any study: ``skipped`` (not DICOM, a DICOMDIR) or
    ``failed`` (no readable StudyInstanceUID), its reason naming it by key."""
    key = file_key(path, sop_uid)
    uri = path.absolute().as_uri()
    if skip:
        return Unidentified(key, uri, f"{key}: {skip}", path, SKIPPED)
    error = one_line(exc) if exc else "none in the header"
    reason = f"{key}: no readable StudyInstanceUID: {name_by_key(error, path, key)}"
    return Unidentified(key, uri, reason, path)


def _hidden(path: Path, root: Path) -> bool:
    """Temporary and hidden files (ours are ``.name.tmp``) are never inputs."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)
