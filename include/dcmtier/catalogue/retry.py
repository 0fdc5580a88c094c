"""Which catalogue errors pass, and how long to keep trying.

A lost or refused connection, a server shutting down or restarting, a deadlock, a
serialization failure and a busy SQLite file are transient: the same statement is expected to
work a moment later. Everything else (a bad password, a missing table, a full disk) is not.
Transient errors are retried with a doubling pause, each retry logged, until the budget
(``$DCMTIER_CATALOGUE_RETRY_SECONDS``, 60 s) is spent.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from dcmtier.errors import ConfigError

T = TypeVar("T")
RETRY_ENV = "DCMTIER_CATALOGUE_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 60.0
# deadlock, serialization failure; admin shutdown, crash shutdown, cannot connect now
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001", "57P01", "57P02", "57P03"})
CONNECTION_CLASS = "08"  # SQLSTATE class "connection exception"
SQLITE_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED

log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """True for an error that the same statement is expected not to meet again shortly."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    state = getattr(orig, "sqlstate", None)
    if state:
        return state in TRANSIENT_SQLSTATES or str(state).startswith(CONNECTION_CLASS)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return int(code) in SQLITE_BUSY_CODES
    # psycopg reports a refused or dropped connection without a SQLSTATE
    return isinstance(exc, OperationalError)


@dataclass(frozen=True)
class Retry:
    """A budget of seconds for retrying transient errors, pauses doubling from ``first_s``."""

    budget_s: float = DEFAULT_RETRY_SECONDS
    first_s: float = 0.25
    longest_s: float = 10.0

    @classmethod
    def from_environment(cls) -> Retry:
        text = os.environ.get(RETRY_ENV, "").strip()
        if not text:
            return cls()
        try:
            budget = float(text)
        except ValueError as exc:
            raise ConfigError(f"{RETRY_ENV} must be a number of seconds, not {text!r}") from exc
        if budget < 0:
            raise ConfigError(f"{RETRY_ENV} must not be negative, not {text}")
        return cls(budget_s=budget)

    def run(self, step: Callable[[], T], *, what: str, where: str) -> T:
        """``step()``, again after each transient error while the budget lasts.

        Raises
        ------
        GaveUp
            The budget is spent; it says how many attempts over how long, and the last error.
        """
        started = time.monotonic()
        pause = self.first_s
        for attempt in range(1, 10_000):
            try:
                return step()
            except DBAPIError as exc:
                if not is_transient(exc):
                    raise
                spent = time.monotonic() - started
                if spent + pause > self.budget_s:
                    raise GaveUp(attempt, spent, exc) from exc
                log.warning(
                    "catalogue at %s, %s: %s; retry %d in %.2f s (%.0f of %.0f s spent)",
                    where, what, first_line(exc), attempt, pause, spent, self.budget_s,
                )  # fmt: skip
                time.sleep(pause)
                pause = min(pause * 2, self.longest_s)
        raise AssertionError("unreachable")  # pragma: no cover


class GaveUp(Exception):
    """Transient errors outlasted the retry budget."""

    def __init__(self, attempts: int, seconds: float, last: DBAPIError) -> None:
        super().__init__(f"{first_line(last)} ({attempts} attempts over {seconds:.1f} s)")
        self.last = last


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__
