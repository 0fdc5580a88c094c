"""``codec.decoding``: JPEG XL made decodable in a copy, the caller's dataset left untouched."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.pixels import apply_modality_lut

from dcmtier.codec import syntaxes
from dcmtier.codec.decoding import jpeg_xl_as_decodable
from dcmtier.records import OK
from dcmtier.sample import write_ct_series
from dcmtier.tiers import get_tier
from dcmtier.work.compress import CompressConfig, compress_file
from tests.support import reference_file


@pytest.fixture(autouse=True)
def _pydicom_knows_jpeg_xl() -> None:
    syntaxes.register()


def _compressed(source: Path, tier: str, out: Path) -> Path:
    (result,) = compress_file(source, [get_tier(tier)], CompressConfig(out))
    assert result.status == OK, result.reason
    return Path(str(result.output))


def _state(ds: Dataset) -> tuple[object, ...]:
    element = ds["PixelData"]
    return (
        ds.file_meta.TransferSyntaxUID, element.value, element.VR,
        element.is_undefined_length, ds.get("NumberOfFrames"),
    )  # fmt: skip


def test_a_jpeg_xl_lossless_dataset_is_decoded_into_a_copy_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    (source,) = write_ct_series(tmp_path / "landing", slices=1, rows=32, columns=32)
    ds = dcmread(_compressed(source, "jxl-lossless", tmp_path / "out"))
    before = _state(ds)
    decodable = jpeg_xl_as_decodable(ds)
    assert decodable.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    original = dcmread(source)  # signed CT: stored unsigned, the intercept keeps each HU
    np.testing.assert_array_equal(
        apply_modality_lut(decodable.pixel_array, decodable),
        apply_modality_lut(original.pixel_array, original),
    )
    assert _state(ds) == before  # the caller's dataset still holds its JPEG XL codestreams
    assert ds.file_meta.TransferSyntaxUID == syntaxes.JPEG_XL_LOSSLESS.uid


def test_a_jpeg_recompression_dataset_is_rebuilt_into_a_copy_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    name = "SC_rgb_jpeg_dcmtk.dcm"  # one frame of JPEG Baseline
    source = tmp_path / "landing" / name
    source.parent.mkdir()
    shutil.copyfile(reference_file(name), source)
    ds = dcmread(_compressed(source, "jxl-jpeg", tmp_path / "out"))
    before = _state(ds)
    decodable = jpeg_xl_as_decodable(ds)
    assert decodable.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert decodable.PixelData == dcmread(source).PixelData  # the JPEG bytes, encapsulated
    assert _state(ds) == before
