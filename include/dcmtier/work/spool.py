"""Codestreams kept on disk rather than in memory, read back a frame at a time.

A codec-choosing tier (`dcmtier.work.choosing`) codes the whole instance with each of its
candidates and keeps the smallest: holding the candidates' codestreams in memory would cost up
to twice the largest output on top of everything else, for an instance of any size. A
`Spool` writes each frame's codestream to an anonymous temporary file (in ``$TMPDIR``; gone
when closed, or when the process ends however it ends) and keeps in memory only where each one
is and its small attributes (`Encoded` without its data). The file's pages sit in the kernel's
page cache, which is not the process's resident memory and is given up under pressure.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator

from dcmtier.codec.backends import Encoded


class Spool:
    """An append-only sequence of `Encoded` frames whose data lives in a temporary file."""

    def __init__(self) -> None:
        # closed by close() (a candidate that lost, or read back) or with the object
        self._file = tempfile.TemporaryFile(prefix="dcmtier-spool-")  # noqa: SIM115
        self._entries: list[tuple[int, int, Encoded]] = []  # offset, length, data-less frame
        self._end = 0

    def append(self, encoded: Encoded) -> None:
        data = memoryview(encoded.data)
        written = 0
        while written < len(data):
            written += os.pwrite(self._file.fileno(), data[written:], self._end + written)
        self._entries.append((self._end, len(data), dataclasses.replace(encoded, data=b"")))
        self._end += len(data)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> Encoded:
        offset, length, frame = self._entries[index]
        data = os.pread(self._file.fileno(), length, offset)
        if len(data) != length:  # cannot happen short of the file being truncated under us
            raise OSError(f"spooled frame {index}: {len(data)} of {length} bytes read back")
        return dataclasses.replace(frame, data=data)

    def __iter__(self) -> Iterator[Encoded]:
        for index in range(len(self._entries)):
            yield self[index]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
