"""Outputs of real ``dcmtier process`` runs, and the viewers' codecs in Node.js (skipped here
when Node.js or the packages are missing, failed in CI, whose ``make test`` installs them)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcmtier.cli import main
from dcmtier.sample import write_ct_series
from dcmtier.viewer.node import NodeDecoder, ViewerUnavailable, check_installed, node_binary
from tests.support import reference_file, skip_or_fail

CT_TIERS = (
    "j2k-lossless", "j2k-r20", "htj2k-lossless", "htj2k-r20", "jls-lossless", "jls-near2",
    "jxl-lossless",
)  # fmt: skip
SIGNED_TIERS = ("j2k-lossless", "htj2k-lossless", "jls-lossless", "jxl-lossless")


@pytest.fixture(scope="session")
def viewer_codecs() -> None:
    try:
        node_binary()
        check_installed()
    except ViewerUnavailable as exc:
        skip_or_fail(str(exc))


@pytest.fixture
def node(viewer_codecs: None) -> Iterator[NodeDecoder]:
    with NodeDecoder() as decoder:
        yield decoder


def _process(sources: list[Path], out: Path, tiers: tuple[str, ...]) -> Path:
    argv = ["process", *map(str, sources), "--out", str(out), "--jobs", "1"]
    assert main([*argv, *(a for t in tiers for a in ("--tier", t))]) == 0
    return out


@pytest.fixture(scope="module")
def ct_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Unsigned 12-bit CT, 512 x 512 (two slices: the issue's case made smaller)."""
    base = tmp_path_factory.mktemp("viewer-ct")
    sources = write_ct_series(base / "src", slices=2, rows=512, columns=512, signed=False)
    return _process(sources, base / "out", CT_TIERS)


@pytest.fixture(scope="module")
def signed_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pydicom's CT_small.dcm: signed 16-bit, 128 x 128."""
    base = tmp_path_factory.mktemp("viewer-signed")
    (base / "src").mkdir()
    source = Path(shutil.copy(reference_file("CT_small.dcm"), base / "src" / "CT_small.dcm"))
    return _process([source], base / "out", SIGNED_TIERS)
