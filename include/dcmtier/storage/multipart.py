"""``multipart/related`` bodies as DICOMweb uses them (RFC 2387): the parts of a WADO-RS
response, and the body of a STOW-RS request.

A WADO-RS response is first written whole to a file (an instance may be hundreds of MiB), then
its parts are found in a memory map of that file and copied out: no part is held in memory. A
response without its closing delimiter (``--boundary--``) is truncated and raises, so a
connection cut mid-transfer never yields a short instance.
"""

from __future__ import annotations

import mmap
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dcmtier.errors import StorageError

DICOM = "application/dicom"
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_COPY_BYTES = 1 << 20


@dataclass(frozen=True)
class Part:
    """Where one part's body is in a response file: ``[start, end)``, and its content type."""

    start: int
    end: int
    content_type: str


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a ``multipart/related`` content type."""
    if not content_type.lower().startswith("multipart/related"):
        raise StorageError(f"expected a multipart/related response, got {content_type!r}")
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise StorageError(f"multipart/related response without a boundary: {content_type!r}")
    return found.group(1) or found.group(2)


def parts(data: bytes | mmap.mmap, boundary: str) -> list[Part]:
    """The parts of a whole ``multipart/related`` body; raises when it is truncated."""
    delimiter = b"--" + boundary.encode()
    found: list[Part] = []
    at = data.find(delimiter)
    if at < 0:
        raise StorageError("multipart response has no part (its boundary never occurs)")
    while True:
        after = at + len(delimiter)
        if data[after : after + 2] == b"--":
            return found  # the closing delimiter
        head_end = data.find(b"\r\n\r\n", after)
        if head_end < 0:
            raise StorageError(
                f"multipart response truncated in the headers of part {len(found) + 1}"
            )
        headers = bytes(data[after:head_end]).decode("latin-1")
        start = head_end + 4
        at = _next_delimiter(data, b"\r\n" + delimiter, start)
        if at < 0:
            raise StorageError(
                f"multipart response truncated in part {len(found) + 1} (no closing boundary)"
            )
        found.append(Part(start, at, _content_type(headers)))
        at += 2


def _next_delimiter(data: bytes | mmap.mmap, delimiter: bytes, start: int) -> int:
    """Where the next whole ``delimiter`` starts: followed by ``--``, white space or a line
    end, not by more boundary-like characters (RFC 2046 section 5.1.1)."""
    at = data.find(delimiter, start)
    while at >= 0 and data[at + len(delimiter) : at + len(delimiter) + 1] not in _AFTER:
        at = data.find(delimiter, at + 1)
    return at


_AFTER = (b"-", b"\r", b"\n", b" ", b"\t")


def split_file(response: Path, boundary: str, targets: Sequence[Path]) -> int:
    """Copy the parts of the body in ``response`` into ``targets``, one each, in order.

    Returns how many parts there were; raises when the body is truncated or holds a number of
    parts other than ``len(targets)`` (a retrieval of one instance expects exactly one).
    """
    with (
        response.open("rb") as handle,
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
    ):
        found = parts(data, boundary)
        if len(found) != len(targets):
            raise StorageError(
                f"multipart response holds {len(found)} parts, expected {len(targets)}"
            )
        for part, target in zip(found, targets, strict=True):
            handle.seek(part.start)
            with target.open("wb") as out:
                _copy(handle, out, part.end - part.start)
    return len(found)


def body(files: Sequence[Path], content_type: str = DICOM) -> tuple[str, bytes]:
    """A STOW-RS request body holding ``files`` whole: (its Content-Type, its bytes)."""
    boundary = f"dcmtier-{secrets.token_hex(16)}"
    chunks: list[bytes] = []
    for path in files:
        chunks += [
            f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(),
            path.read_bytes(),
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    header = f'multipart/related; type="{content_type}"; boundary={boundary}'
    return header, b"".join(chunks)


def _content_type(headers: str) -> str:
    for line in headers.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-type":
            return value.strip()
    return ""


def _copy(source: BinaryIO, target: BinaryIO, length: int) -> None:
    left = length
    while left:
        chunk = source.read(min(left, _COPY_BYTES))
        if not chunk:
            raise StorageError("multipart response ends inside a part")
        target.write(chunk)
        left -= len(chunk)


def iter_parts(data: bytes, boundary: str) -> Iterator[bytes]:
    """The bodies of a small ``multipart/related`` body held in memory (tests, errors)."""
    for part in parts(data, boundary):
        yield data[part.start : part.end]
