"""SIGINT and SIGTERM: stop the work, say which attempts were interrupted, then exit.

`signals_interrupt` turns either signal into `Interrupted` (a ``BaseException``, like
``KeyboardInterrupt``, so that no ``except Exception`` on the way swallows it), after calling
any Python handler that was there before (Airflow's task runner has one for SIGTERM). The unit
of work marks its unfinished attempts ``interrupted`` on the way out; the command line then
prints one line and exits 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from dcmtier.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def reason(exc: BaseException) -> str | None:
    """Why the work stopped, when a signal stopped it; None for any other error."""
    if isinstance(exc, Interrupted):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by SIGINT"
    return None


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted` in the main thread.

    Elsewhere than the main thread (signals cannot be handled there) it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, _raiser(previous[signum]))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raiser(before: Any) -> Callable[[int, FrameType | None], None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        if callable(before) and before is not signal.default_int_handler:
            before(signum, frame)  # e.g. Airflow's on_kill for SIGTERM
        raise Interrupted(signum)

    return handle


def ignore_in_workers() -> None:
    """For worker processes: leave SIGINT to the parent, which stops them itself (a Ctrl-C
    reaches the whole process group), and die with the parent (Linux), so that a killed run
    leaves no worker behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: workers end when their queue closes
        pass
