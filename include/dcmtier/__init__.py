"""dcmtier: rate-tiered JPEG 2000 / HTJ2K / JPEG-LS copies of a DICOM archive."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dcmtier")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
