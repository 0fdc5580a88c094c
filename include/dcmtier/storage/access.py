"""Reading one output by where the catalogue says it is: a path, a ``file://`` URI, or an
object store URL (``s3://archive/dcm/packages/<study>/<tier>.zip``).

What reads outputs after a run (the compression pages) goes through these, so a remote output
root is read the same way as a local one, with the store's standard credentials (see
`dcmtier.storage.store`). Errors are `StorageError` for a store, `OSError` for a local file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from dcmtier.errors import StorageError
from dcmtier.storage.store import is_remote

CHUNK_BYTES = 1 << 20


def local_path(location: str) -> Path | None:
    """The local path a location names (a path or ``file://`` URI); None for a store URL."""
    if is_remote(location):
        return None
    parsed = urlparse(location)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(location)


def parent(location: str, levels: int = 1) -> str:
    """``location`` without its last ``levels`` components (a URL stays a URL)."""
    path = local_path(location)
    if path is not None:
        return str(path.parents[levels - 1])
    return location.rstrip("/").rsplit("/", levels)[0]


def join(location: str, *parts: str) -> str:
    """``location`` / ``parts`` (a URL joined with ``/``)."""
    path = local_path(location)
    if path is not None:
        return str(path.joinpath(*parts))
    return "/".join([location.rstrip("/"), *parts])


def version(location: str) -> tuple[int, str]:
    """Size and a version token (modification time, or the object's ETag): what changes when
    the file or object is rewritten. ``(0, "")`` when it does not exist."""
    path = local_path(location)
    if path is not None:
        try:
            stat = path.stat()
        except OSError:
            return 0, ""
        return stat.st_size, str(stat.st_mtime_ns)
    try:
        info = _call("stat", location, lambda fs, p: fs.info(p))
    except StorageError:
        return 0, ""
    tag = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime")
    return int(info.get("size") or 0), str(tag or "")


def chunks(location: str) -> Iterator[bytes]:
    """The bytes of a file or object, streamed in 1 MiB chunks."""
    path = local_path(location)
    if path is not None:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk
        return
    handle = _call("open", location, lambda fs, p: fs.open(p, "rb"))
    try:
        while True:
            chunk = _call("read", location, lambda _fs, _p: handle.read(CHUNK_BYTES))
            if not chunk:
                return
            yield bytes(chunk)
    finally:
        handle.close()


def fetch(location: str, folder: Path, name: str) -> Path:
    """A local file with the contents of ``location``: the file itself when local, else a copy
    downloaded to ``folder / name``."""
    path = local_path(location)
    if path is not None:
        return path
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for chunk in chunks(location):
            out.write(chunk)
    return target


def read_bytes(location: str) -> bytes:
    """The whole file or object (small ones: a Parquet partition)."""
    path = local_path(location)
    if path is not None:
        return path.read_bytes()
    return bytes(_call("read", location, lambda fs, p: fs.cat_file(p)))


def is_file(location: str) -> bool:
    path = local_path(location)
    if path is not None:
        return path.is_file()
    try:
        return bool(_call("stat", location, lambda fs, p: fs.isfile(p)))
    except StorageError:
        return False


def _call(what: str, url: str, func: Any) -> Any:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
        return func(fs, path)
    except Exception as exc:  # every backend and its HTTP client raise their own types
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise StorageError(f"{what} {url} failed: {text}") from exc
