"""Peak resident memory of a piece of work, in the process that does it.

The figure is the kernel's high-water mark of the process's resident memory (``VmHWM`` in
``/proc/self/status``, else ``getrusage``'s ``ru_maxrss``) when the work ends: baseline
included (the interpreter and its libraries are part of what a worker slot must hold). The
mark only rises, so it is the peak of the process up to then: in a process that does one
piece of work (an Airflow task's own process, a ``dcmtier process`` run on one study) the
peak of that work; in a process that did several, the highest of them so far, an upper bound
for the last. `window` also says whether the work raised the mark (``raised``): when it did,
the figure is this work's own peak.

The mark is never reset (Linux could, through ``/proc/self/clear_refs``): a reset also
lowers what the process reports at exit, so ``/usr/bin/time``, a supervisor's or Celery's
accounting would then understate the process's peak.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")


@dataclass
class Peak:
    """The process's peak resident bytes when a window closed, and whether its work raised it."""

    bytes: int = 0
    raised: bool = False


@contextmanager
def window() -> Iterator[Peak]:
    """Measure the peak resident memory of the process up to the end of the ``with`` block."""
    peak = Peak()
    before = high_water()
    try:
        yield peak
    finally:
        peak.bytes = high_water()
        peak.raised = peak.bytes > before


def high_water() -> int:
    """The kernel's high-water mark of the process's resident bytes (``VmHWM``), else
    ``ru_maxrss``."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, else KiB
