"""dcmtier: rate-tiered JPEG 2000 / HTJ2K / JPEG-LS copies of a DICOM archive."""

from __future__ import annotations

from functools import cache

__all__ = ["__version__"]


@cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dcmtier")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0+unknown"


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata on first use (importing dcmtier, as
    ``dcmtier --help`` does, need not read it)."""
    if name == "__version__":
        return _version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
