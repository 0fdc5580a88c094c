"""Versions of the software that made an output: recorded in Parquet rows, manifests, lineage."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

PACKAGES = (
    "dcmtier",
    "pydicom",
    "pylibjpeg-openjpeg",
    "imagecodecs",
    "pyjpegls",
    "numpy",
    "pyarrow",
)


@cache
def software_versions() -> dict[str, str]:
    """Package name to installed version (``missing`` when not installed)."""
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found
