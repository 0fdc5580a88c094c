"""The landing area: a local folder or any fsspec URL (s3://, gs://, az://, memory://, file://),
or a DICOMweb server (``dicomweb+http(s)://``, `dcmtier.discovery.dicomweb`).

Discovery reads headers only; a work item on a remote landing area stages its study's files
into a local folder before the unit of work runs (the codecs need real files).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcmtier.errors import ConfigError, one_line
from dcmtier.records import KEY_DIGITS, content_key, file_key, is_valid_uid
from dcmtier.storage.dicomweb import instance_uris, is_dicomweb, retrieve_all

LOCAL_SCHEMES = ("", "file", "local")
HEADER_BLOCK = 1 << 16  # bytes a remote header read fetches at a time (one GET for most files)


@dataclass(frozen=True)
class LandingFile:
    """One file in the landing area: where it is, its size, and when it arrived (mtime)."""

    uri: str
    size: int
    modified: datetime
    etag: str | None = None  # object stores: what says the content changed


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
        return [_local(root)] if root.is_file() else sorted(_walk(root), key=lambda f: f.uri)
    if is_dicomweb(uri):  # every instance of every study, from QIDO-RS searches
        now = datetime.now(UTC)  # when first seen: QIDO-RS gives no arrival time
        return [LandingFile(u, 0, now) for u in instance_uris(uri)]
    fs, base = _filesystem(uri)
    found = []
    for name, info in sorted(fs.find(base, detail=True).items()):
        if info.get("type") == "file" and not any(s.startswith(".") for s in name.split("/")):
            found.append(
                LandingFile(_unstrip(fs, name, uri), int(info["size"]), _mtime(info), _etag(info))
            )
    return found


def list_prefixes(uri: str, prefixes: Sequence[str]) -> list[LandingFile]:
    """Every file below the ``prefixes`` (folders relative to ``uri``); a missing one is empty."""
    found: list[LandingFile] = []
    for prefix in prefixes:
        below = join(uri, prefix)
        if is_local(below) and not local_path(below).exists():
            continue
        found += list_files(below)
    return sorted(found, key=lambda f: f.uri)


def join(uri: str, relative: str) -> str:
    """``uri`` / ``relative`` for a path or a URL."""
    if is_local(uri):
        return str(local_path(uri) / relative.strip("/"))
    return f"{uri.rstrip('/')}/{relative.strip('/')}"


def folder_scope(uri: str) -> str:
    """The prefix every file URI below the folder ``uri`` starts with (with its separator)."""
    base = scope(uri)
    if is_local(uri) and local_path(uri).is_file():
        return base
    return base.rstrip("/") + "/"


def scope(uri: str) -> str:
    """The prefix every file URI under ``uri`` starts with in the landing index (absolute for
    local paths, the filesystem's own spelling for URLs: ``memory://x`` lists as
    ``memory:///x/...``). ``file_locations`` spells local files as URIs: `location_scope`."""
    if is_local(uri):
        return str(local_path(uri).absolute())
    if is_dicomweb(uri):
        return uri.rstrip("/")
    fs, base = _filesystem(uri)
    return _unstrip(fs, base, uri).rstrip("/")


def location_scope(uri: str) -> str:
    """The prefix of the `location` of every file under ``uri`` (a folder ends with ``/``):
    what the operators' ``file_locations`` rows of a landing area start with."""
    if not is_local(uri):
        return folder_scope(uri)  # remote locations are spelled as listed
    path = local_path(uri).absolute()
    return f"{path.as_uri().rstrip('/')}/" if path.is_dir() else path.as_uri()


def location(uri: str) -> str:
    """Where a landing file is, as the catalogue's operator table records it: a ``file://``
    URI of the absolute path for local files, the URL for others."""
    return local_path(uri).absolute().as_uri() if is_local(uri) else uri


def key_of(item: LandingFile, sop_uid: str) -> str:
    """The file key of a landing file (``dcmtier.records.file_key``), remote files included:
    its SOP Instance UID when valid (no I/O), else the hash of its content (one more read)."""
    if is_local(item.uri):
        return file_key(local_path(item.uri), sop_uid)
    if is_valid_uid(sop_uid):
        return sop_uid
    if is_dicomweb(item.uri):  # named by its UIDs on the server, nothing to hash but that
        return hashlib.sha256(item.uri.encode()).hexdigest()[:KEY_DIGITS]
    try:
        with open_file(item.uri) as handle:
            return content_key(handle)
    except OSError:
        return hashlib.sha256(item.uri.encode()).hexdigest()[:KEY_DIGITS]


def open_file(uri: str, *, block_size: int | None = None) -> Any:
    """A binary file object for reading ``uri`` (remote: ``block_size`` bytes per request)."""
    if is_local(uri):
        return local_path(uri).open("rb")
    fs, path = _filesystem(uri)
    if block_size is None:
        return fs.open(path, "rb")
    return fs.open(path, "rb", block_size=block_size, cache_type="readahead")


def stage(
    uris: Sequence[str], folder: Path, arrivals: Mapping[str, datetime] | None = None
) -> list[Path]:
    """Local paths for ``uris``: local files as they are, remote ones copied into ``folder``.

    A copy keeps the object's modification time, so outputs that record the sources' newest
    time (a package's manifest) come out the same on every run, and each of a study's tier
    tasks finds the sources its encode task cached (``work.sources`` checks size and time). A
    DICOMweb instance has no modification time: it takes its time from ``arrivals`` (the
    landing index's, when discovery first saw it), else keeps the time it was retrieved.
    """
    out: list[Path] = []
    archived = [(n, u) for n, u in enumerate(uris) if is_dicomweb(u)]
    if archived:  # retrieved with WADO-RS, several at a time
        folder.mkdir(parents=True, exist_ok=True)
        targets = [folder / f"{n:06d}.dcm" for n, _ in archived]
        retrieve_all([u for _, u in archived], targets)
        for (_, uri), target in zip(archived, targets, strict=True):
            if arrivals and uri in arrivals:
                _set_mtime(target, arrivals[uri])
    for index, uri in enumerate(uris):
        if is_local(uri):
            out.append(local_path(uri))
            continue
        target = folder / f"{index:06d}.dcm"  # not the file's name: it may name the patient
        out.append(target)
        if is_dicomweb(uri):
            continue  # retrieved above
        folder.mkdir(parents=True, exist_ok=True)
        fs, path = _filesystem(uri)
        with fs.open(path, "rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        modified = _mtime(fs.info(path)).timestamp()
        os.utime(target, (modified, modified))
    return out


def _set_mtime(path: Path, when: datetime) -> None:
    """Give ``path`` the modification time ``when`` (naive: UTC), to the microsecond."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    ns = int(aware.timestamp()) * 1_000_000_000 + aware.microsecond * 1000
    os.utime(path, ns=(ns, ns))


DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
NOT_DICOM = "not a DICOM file (no DICM prefix): skipped"
A_DICOMDIR = "a DICOMDIR (the directory of a medium, not an instance): skipped"
SKIP_REASONS = (NOT_DICOM, A_DICOMDIR)  # the landing index keeps them as the file's read error


def read_header(uri: str, *, block_size: int | None = None) -> tuple[Any, str | None, str | None]:
    """A landing file's header (never its pixel data) as (dataset, None, skip reason), or why
    it could not be read as (None, the error on one line, skip reason) (``skip_reason``)."""
    from pydicom import dcmread

    try:
        with open_file(uri, block_size=block_size) as handle:
            header = dcmread(handle, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types on junk input
        return None, one_line(exc), skip_reason(None, exc)
    return header, None, skip_reason(header, None)


def skip_reason(header: Any, error: BaseException | None) -> str | None:
    """Why a landing file is not a DICOM instance, or None when it may be one.

    Files that are not DICOM Part 10 (no ``DICM`` prefix: text, images, archives) and
    ``DICOMDIR`` files (a directory of a medium, not an instance) are ``skipped``, not failed.
    """
    from pydicom.errors import InvalidDicomError

    if isinstance(error, InvalidDicomError):
        return NOT_DICOM
    meta = getattr(header, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
        return A_DICOMDIR
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


def _etag(info: dict[str, Any]) -> str | None:
    for key in ("ETag", "etag", "md5Hash", "content_md5"):
        value = info.get(key)
        if value:
            return str(value).strip('"')[:128]
    return None


def _walk(root: Path) -> Iterator[LandingFile]:
    """Regular files below ``root``, hidden names (ours: ``.name.tmp``) and folders skipped."""
    folders = [str(root)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    folders.append(entry.path)
                elif entry.is_file():
                    stat = entry.stat()
                    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                    yield LandingFile(entry.path, stat.st_size, modified)


def _local(path: Path) -> LandingFile:
    stat = path.stat()
    return LandingFile(str(path), stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
