"""Peak resident memory of a piece of work, in the process that does it.

``getrusage``'s ``ru_maxrss`` is the process's high-water mark since it started: in a worker
that has made many instances it says what the largest one needed, not this one. On Linux the
kernel's mark can be reset (``/proc/self/clear_refs``, "5") and read (``VmHWM`` in
``/proc/self/status``), so `window` measures the work inside it alone: the process's peak
resident memory between its start and its end, baseline included (the interpreter and its
libraries are part of what a worker slot must hold). Windows nest: an outer window sees the
peaks of the windows inside it. Where the mark cannot be reset (not Linux, a restricted
``/proc``), the figure is ``ru_maxrss``, the process's peak since it started: an upper bound.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


@dataclass
class Peak:
    """The peak resident bytes of a window's work; set when the window closes."""

    bytes: int = 0
    seen: int = 0  # the highest mark read inside the window before a reset (a nested window)


_open: list[Peak] = []


@contextmanager
def window() -> Iterator[Peak]:
    """Measure the peak resident memory of the work inside the ``with`` block."""
    peak = Peak()
    _reset()
    _open.append(peak)
    try:
        yield peak
    finally:
        _open.remove(peak)
        peak.bytes = max(peak.seen, _high_water())
        for outer in _open:
            outer.seen = max(outer.seen, peak.bytes)


def _reset() -> None:
    """Reset the kernel's high-water mark to the present resident size, once the windows
    open have kept what it was."""
    mark = _high_water()
    for outer in _open:
        outer.seen = max(outer.seen, mark)
    with suppress(OSError):  # the mark then stays the process's peak since it started
        _CLEAR_REFS.write_text("5")


def _high_water() -> int:
    """The kernel's high-water mark of resident bytes (``VmHWM``), else ``ru_maxrss``."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, else KiB
