"""A spool gives back the frames it was given, a frame at a time, from a temporary file."""

from __future__ import annotations

import os

from dcmtier.codec.backends import Encoded
from dcmtier.work.spool import Spool


def test_frames_come_back_whole_with_their_attributes_in_order() -> None:
    frames = [
        Encoded(os.urandom(1000 + n), "MONOCHROME2", 12, encodes=n, params={"step": n / 3})
        for n in range(5)
    ]
    frames.append(Encoded(b"", "YBR_RCT", 8, offset=1024))  # an empty codestream too
    with Spool() as spooled:
        for frame in frames:
            spooled.append(frame)
        assert len(spooled) == len(frames)
        assert list(spooled) == frames
        assert spooled[3] == frames[3] and spooled[-1] == frames[-1]


def test_a_closed_spool_gives_up_its_file() -> None:
    spooled = Spool()
    spooled.append(Encoded(b"abc", "MONOCHROME2", 8))
    descriptor = spooled._file.fileno()
    spooled.close()
    assert spooled._file.closed
    try:
        os.fstat(descriptor)
    except OSError:
        return
    raise AssertionError("the descriptor is still open")  # pragma: no cover
