"""The landing area: a local folder or any fsspec URL (s3://, gs://, az://, memory://, file://).

Discovery reads headers only; a work item on a remote landing area stages its study's files
into a local folder before the unit of work runs (the codecs need real files).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcmtier.errors import ConfigError
from dcmtier.records import KEY_DIGITS, content_key, file_key, is_valid_uid

LOCAL_SCHEMES = ("", "file", "local")


@dataclass(frozen=True)
class LandingFile:
    """One file in the landing area: where it is, its size, and when it arrived (mtime)."""

    uri: str
    size: int
    modified: datetime


def is_local(uri: str) -> bool:
    return _scheme(uri) in LOCAL_SCHEMES


def local_path(uri: str) -> Path:
    """The filesystem path of a local URI (``/x``, ``file:///x``); remote URIs raise."""
    if not is_local(uri):
        raise ConfigError(f"{uri}: not a local path")
    return Path(uri.split("://", 1)[1] if "://" in uri else uri)


def list_files(uri: str) -> list[LandingFile]:
    """Every regular file below ``uri`` (hidden names skipped), in a stable order."""
    if is_local(uri):
        root = local_path(uri).absolute()
        if not root.exists():
            raise ConfigError(f"{uri}: landing area does not exist")
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        return [_local(p) for p in files if not _hidden(p, root)]
    fs, base = _filesystem(uri)
    found = []
    for name, info in sorted(fs.find(base, detail=True).items()):
        if info.get("type") == "file" and not any(s.startswith(".") for s in name.split("/")):
            found.append(LandingFile(_unstrip(fs, name, uri), int(info["size"]), _mtime(info)))
    return found


def scope(uri: str) -> str:
    """The prefix of the `location` of every file under ``uri`` (a folder ends with ``/``)."""
    if not is_local(uri):
        return uri if uri.endswith("/") else f"{uri}/"
    path = local_path(uri).absolute()
    return f"{path.as_uri().rstrip('/')}/" if path.is_dir() else path.as_uri()


def location(uri: str) -> str:
    """Where a landing file is, as the catalogue's operator table records it: a ``file://``
    URI of the absolute path for local files, the URL for others."""
    return local_path(uri).absolute().as_uri() if is_local(uri) else uri


def key_of(item: LandingFile, sop_uid: str) -> str:
    """The file key of a landing file (``dcmtier.records.file_key``), remote files included."""
    if is_local(item.uri):
        return file_key(local_path(item.uri), sop_uid)
    if is_valid_uid(sop_uid):
        return sop_uid
    try:
        with open_file(item.uri) as handle:
            return content_key(handle)
    except OSError:
        return hashlib.sha256(item.uri.encode()).hexdigest()[:KEY_DIGITS]


def open_file(uri: str) -> Any:
    """A binary file object for reading ``uri``."""
    if is_local(uri):
        return local_path(uri).open("rb")
    fs, path = _filesystem(uri)
    return fs.open(path, "rb")


def stage(uris: Sequence[str], folder: Path) -> list[Path]:
    """Local paths for ``uris``: local files as they are, remote ones copied into ``folder``.

    A copy keeps the object's modification time, so outputs that record the sources' newest
    time (a package's manifest) come out the same on every run.
    """
    out: list[Path] = []
    for index, uri in enumerate(uris):
        if is_local(uri):
            out.append(local_path(uri))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{index:06d}.dcm"  # not the file's name: it may name the patient
        fs, path = _filesystem(uri)
        with fs.open(path, "rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        modified = _mtime(fs.info(path)).timestamp()
        os.utime(target, (modified, modified))
        out.append(target)
    return out


def iter_headers(
    files: Sequence[LandingFile],
) -> Iterator[tuple[LandingFile, Any, str | None, str | None]]:
    """Yield (file, header dataset or None, error, skip reason), reading headers only.

    The skip reason says why a file is not an instance at all (``skip_reason``).
    """
    from pydicom import dcmread

    for item in files:
        try:
            with open_file(item.uri) as handle:
                header = dcmread(handle, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types on junk input
            error = " ".join(str(exc).split()) or type(exc).__name__
            yield item, None, error, skip_reason(None, exc)
            continue
        yield item, header, None, skip_reason(header, None)


DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage


def skip_reason(header: Any, error: BaseException | None) -> str | None:
    """Why a landing file is not a DICOM instance, or None when it may be one.

    Files that are not DICOM Part 10 (no ``DICM`` prefix: text, images, archives) and
    ``DICOMDIR`` files (a directory of a medium, not an instance) are ``skipped``, not failed.
    """
    from pydicom.errors import InvalidDicomError

    if isinstance(error, InvalidDicomError):
        return "not a DICOM file (no DICM prefix): skipped"
    meta = getattr(header, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
        return "a DICOMDIR (the directory of a medium, not an instance): skipped"
    return None


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else ""


def _filesystem(uri: str) -> tuple[Any, str]:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{uri}: no filesystem for this URL: {exc}") from exc
    return fs, str(path)


def _unstrip(fs: Any, path: str, uri: str) -> str:
    return str(fs.unstrip_protocol(path)) if "://" in uri else path


def _mtime(info: dict[str, Any]) -> datetime:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.now(UTC)


def _local(path: Path) -> LandingFile:
    stat = path.stat()
    return LandingFile(str(path), stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))


def _hidden(path: Path, root: Path) -> bool:
    if path == root:
        return False
    return any(part.startswith(".") for part in path.relative_to(root).parts)
