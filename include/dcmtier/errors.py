"""The errors dcmtier raises; each names the file and says what was wrong.

Permanent errors about one input (``InvalidInput`` and its kin) let a batch carry on; the
caller records them. ``PolicyRefused`` and ``NoPixelData`` are outcomes, not faults.
"""

from __future__ import annotations

import signal


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its whitespace runs made single spaces), or its
    type's name when it has none: what a one-line error report quotes of a library's error."""
    return " ".join(str(exc).split()) or type(exc).__name__


class DcmtierError(Exception):
    """Base class of every error dcmtier raises on purpose."""


class InvalidInput(DcmtierError):
    """An input file cannot be used: not DICOM, truncated, corrupt or of an unsupported layout."""


class NoPixelData(DcmtierError):
    """The object carries no image pixels (SR, RTPLAN, PR, KO...): nothing to compress."""


class PolicyRefused(DcmtierError):
    """A tier is not allowed for this instance; ``rule`` names the rule that refused it."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


class CodecError(DcmtierError):
    """An encoder or decoder failed on data it should have handled."""


class VerificationFailed(DcmtierError):
    """A written output did not decode back to what the tier promises."""


class ConfigError(DcmtierError):
    """A tier, modality rule or option is unknown or malformed."""


class CatalogueError(DcmtierError):
    """The catalogue database is unreachable, not at the code's schema revision, or misused."""


class StorageError(DcmtierError):
    """The object store holding the outputs is unreachable or refused a request (retry)."""


class Interrupted(BaseException):
    """The process received SIGINT or SIGTERM (``work.interrupt`` turns the signals into it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
