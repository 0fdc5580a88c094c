"""The per-study source cache, ``<output>/cache/sources/<study>.bin``: one read of a study's
sources shared by its tier tasks.

In the DAG each study x tier is a task of its own, so without it each of a study's tier tasks
read and parsed every source of the study again, and hashed it again for the catalogue. The
study's ``encode`` task reads every source once anyway (for the layered encode): it writes
what the tier tasks need from each source into one file, and each tier task maps that file
into memory instead of reading the sources: the parsed header (pickled), the frame layout,
the precision its values need, the file's size and SHA-256 (the catalogue's source rows), and
the stored pixel values, read as views of the mapped file (no copy, no parse).

Only sources that ``read_source`` reads on its fast path (explicit VR little endian, 8- or
16-bit greyscale, native pixel data ending the file) are cached; any other source, a source
whose size or modification time changed since, or a missing or unreadable cache, is read as
before: a cache miss is never an error. Entries are keyed by the source's location (its path,
or its landing URI when staged from a store), and checked against the size and modification
time of the file the task holds. The outputs are the same bytes either way.

The cache is dropped with the layered cache (``work.cache.drop_study``; the DAG's ``summary``
task, ``dcmtier cache prune``).
"""

from __future__ import annotations

import logging
import mmap
import pickle
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import Dataset

from dcmtier import owner
from dcmtier.codec.pixels import SourceImage, native_chunks
from dcmtier.outputs import uid_name
from dcmtier.records import Known

log = logging.getLogger(__name__)

MAGIC = b"DCMTSRC1"
ALIGN = 64  # pixel values start on this boundary (any dtype's alignment)
_HEAD = struct.Struct("<8sQQ")  # magic, index offset, index length; pixels from ALIGN on


@dataclass(frozen=True)
class SourceIndex:
    """Which entry of a study's cache file holds each source a task holds (by local path)."""

    file: Path
    entries: Mapping[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.entries)


def cache_file(cache_root: Path, study_uid: str) -> Path:
    """``<cache_root>/<study>.bin``."""
    return cache_root / f"{uid_name(study_uid)}.bin"


def write_cache(target: Path, sources: Iterable[tuple[str, Path, SourceImage, str]]) -> int:
    """Write one study's cache: for each (location, local path, source, SHA-256) read on the
    fast path, its header, layout and pixel values. Returns how many sources it holds.

    ``sources`` is consumed one at a time (a study's pixels are never all in memory). Written
    to a temporary file named for this process and renamed into place, so a reader sees a
    whole cache or none; a cache that would hold nothing is not written.
    """
    from dcmtier.catalogue.sources import header_fields  # SQLAlchemy only where it is used

    try:
        with owner.replacing(target) as temp:
            count = _write_entries(temp.file, sources, header_fields)
            if not count:
                raise _NothingToCache  # the temporary file goes, the target stays as it was
    except _NothingToCache:
        return 0
    return count


class _NothingToCache(Exception):
    """No source of a study was read on the fast path: its cache is not written."""


def _write_entries(
    handle: BinaryIO,
    sources: Iterable[tuple[str, Path, SourceImage, str]],
    header_fields: Callable[[Dataset], dict[str, Any]],
) -> int:
    """The cache's head, each source's pixel values, then the index; how many it holds."""
    entries: list[dict[str, Any]] = []
    handle.write(bytes(ALIGN))  # the head, written last
    offset = 0
    for uri, path, source, sha256 in sources:
        if source.native is None:
            continue
        stat = path.stat()
        entries.append(
            {
                "uri": uri, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "sha256": sha256, "fields": header_fields(source.dataset),
                "header": pickle.dumps(source.dataset, protocol=pickle.HIGHEST_PROTOCOL),
                "spec": source.spec, "frames": source.frames,
                "syntax": source.transfer_syntax, "file_bytes": source.file_bytes,
                "bits_declared": source.bits_declared,
                "offset": offset, "length": len(source.native),
            }
        )  # fmt: skip
        handle.writelines(native_chunks(source.native))
        handle.write(bytes(_aligned(len(source.native)) - len(source.native)))
        offset += _aligned(len(source.native))
    index = pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)
    handle.write(index)
    handle.seek(0)
    handle.write(_HEAD.pack(MAGIC, ALIGN + offset, len(index)))
    return len(entries)


def index_for(file: Path, locations: Mapping[Path, str]) -> SourceIndex | None:
    """The entries of the cache at ``file`` that still describe the files a task holds
    (``locations``: local path -> location); None when there is no usable cache."""
    loaded = _load(file)
    if loaded is None:
        return None
    entries, _ = loaded
    by_uri = {e["uri"]: number for number, e in enumerate(entries)}
    found: dict[str, int] = {}
    for path, uri in locations.items():
        number = by_uri.get(uri)
        if number is None:
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        entry = entries[number]
        if (stat.st_size, stat.st_mtime_ns) == (entry["size"], entry["mtime_ns"]):
            found[str(path)] = number
    return SourceIndex(file, found) if found else None


def cached_source(path: Path, index: SourceIndex | None) -> SourceImage | None:
    """``path``'s source from the cache, its frames views of the mapped file; None when the
    cache does not hold it (the caller reads the file)."""
    if not index:
        return None
    number = index.entries.get(str(path))
    loaded = _load(index.file) if number is not None else None
    if loaded is None or number is None:
        return None
    entries, mapped = loaded
    entry = entries[number]
    start = ALIGN + entry["offset"]
    native = memoryview(mapped)[start : start + entry["length"]]
    header = _header(entry)
    return SourceImage(
        path, header, entry["spec"], entry["frames"], entry["syntax"], entry["file_bytes"],
        bits_declared=entry["bits_declared"], _settled=True, native=native,
    )  # fmt: skip


def release(path: Path, index: SourceIndex | None) -> None:
    """Unmap ``path``'s pixel pages from this process once its tiers are made, so that a task
    going through a study holds one source's pages at a time, not the study's (the pages stay
    in the page cache; a later use maps them again)."""
    number = index.entries.get(str(path)) if index else None
    held = _OPEN.get(index.file) if index and number is not None else None
    if held is None or number is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    entry = held[2][number]
    start = (ALIGN + entry["offset"]) // mmap.PAGESIZE * mmap.PAGESIZE
    end = ALIGN + entry["offset"] + entry["length"]
    held[3].madvise(mmap.MADV_DONTNEED, start, end - start)


def forget(file: Path) -> None:
    """Let go of this process's mapping of ``file`` (a task done with its study): a cache
    deleted later frees its disk space even in a process that lives on."""
    _OPEN.pop(file, None)


def known_sources(index: SourceIndex | None) -> dict[Path, Known]:
    """Header, size and SHA-256 of each source the cache holds, for the catalogue's rows."""
    if not index:
        return {}
    loaded = _load(index.file)
    if loaded is None:
        return {}
    entries, _ = loaded
    return {
        Path(path): Known(entries[n]["fields"], entries[n]["size"], entries[n]["sha256"])
        for path, n in index.entries.items()
    }


# this process's open caches: file -> (size, mtime_ns, entries, mapping)
_OPEN: dict[Path, tuple[int, int, list[dict[str, Any]], mmap.mmap]] = {}


def _load(file: Path) -> tuple[list[dict[str, Any]], mmap.mmap] | None:
    try:
        stat = file.stat()
    except OSError:
        return None
    held = _OPEN.get(file)
    if held is not None and held[:2] == (stat.st_size, stat.st_mtime_ns):
        return held[2], held[3]
    _OPEN.pop(file, None)  # replaced: the old mapping goes when its views do
    try:
        with file.open("rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        magic, at, length = _HEAD.unpack_from(mapped, 0)
        if magic != MAGIC or at + length != len(mapped):
            raise ValueError("not a whole source cache")
        entries = pickle.loads(mapped[at : at + length])
    except (OSError, ValueError, struct.error, pickle.UnpicklingError, EOFError) as exc:
        log.info("source cache %s unusable (%s): the sources are read", file.name, exc)
        return None
    _OPEN[file] = (stat.st_size, stat.st_mtime_ns, entries, mapped)
    return entries, mapped


def _aligned(size: int) -> int:
    return -(-size // ALIGN) * ALIGN


def _header(entry: Mapping[str, Any]) -> Dataset:
    """The entry's parsed header, a copy of its own for each use."""
    header: Dataset = pickle.loads(entry["header"])
    return header
