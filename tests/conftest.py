"""Shared fixtures: reference files from pydicom's test set, a few made from them, and the
smallest generated landing area."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid

from dcmtier.sample import write_ct_series
from tests.support import reference_file


@pytest.fixture
def small_landing(tmp_path: Path) -> Path:
    """``tmp_path/landing`` holding one generated CT study of two 32x32 slices: for tests of
    what surrounds a run (usage errors, the environment, ownership, signals), not of pixels."""
    landing = tmp_path / "landing"
    write_ct_series(landing, slices=2, rows=32, columns=32, seed=9)
    return landing


@pytest.fixture(scope="session")
def derived_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Inputs pydicom does not ship, made from real files by changing the header only."""
    root = tmp_path_factory.mktemp("derived-inputs")
    made: dict[str, Path] = {}
    ds = dcmread(reference_file("CT_small.dcm"))
    _new_uids(ds, "mg")
    ds.Modality = "MG"
    made["mg"] = root / "mg.dcm"
    ds.save_as(made["mg"])
    ds = dcmread(reference_file("examples_overlay.dcm"))  # 12 of 16 bits, unsigned
    _new_uids(ds, "monochrome1")
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.Modality = "CR"
    made["monochrome1"] = root / "monochrome1.dcm"
    ds.save_as(made["monochrome1"])
    return made


def _new_uids(ds: Dataset, seed: str) -> None:
    """Give a header-edited copy its own identity, as a different acquisition would have."""
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(ds, keyword, generate_uid(entropy_srcs=[seed, keyword]))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
