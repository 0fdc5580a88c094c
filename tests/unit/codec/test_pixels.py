"""Reading sources: native fast path = pydicom's values; raw headers write the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.tag import BaseTag

from dcmtier.codec import pixels
from dcmtier.codec.pixels import FileRange, fit_bits, metadata, read_source
from dcmtier.errors import InvalidInput
from dcmtier.sample import write_ct_series
from dcmtier.tiers import TIERS
from dcmtier.work.compress import CompressConfig, compress_file
from tests.support import reference_file


@pytest.fixture(scope="module")
def native_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Signed and unsigned 12-in-16 CT (dcmtier sample), explicit and implicit VR MR."""
    folder = tmp_path_factory.mktemp("native")
    signed = write_ct_series(folder / "signed", slices=1, rows=64, columns=64, seed=3)
    unsigned = write_ct_series(
        folder / "unsigned", slices=1, rows=64, columns=64, seed=3, signed=False
    )
    return [
        *signed,
        *unsigned,
        reference_file("CT_small.dcm"),
        reference_file("MR_small.dcm"),
        reference_file("MR_small_implicit.dcm"),
    ]


def test_native_little_endian_frames_equal_pydicom_s(native_files: list[Path]) -> None:
    for path in native_files:
        source = read_source(path)
        assert source._native_little_endian(), path
        (ours,) = list(source.iter_frames())
        theirs = fit_bits(dcmread(path).pixel_array, source.spec)
        assert ours.dtype == theirs.dtype
        assert np.array_equal(ours, theirs), path
        if source.native is not None:  # read by offset, a frame at a time: read-only values
            assert isinstance(source.native, FileRange)
            assert not ours.flags.writeable
            assert source.native.length == ours.nbytes
        else:
            assert ours.flags.writeable
    fast = [p for p in native_files if read_source(p).native is not None]
    assert len(fast) == 4  # every explicit VR little endian file here; implicit VR is parsed


def test_elements_after_pixel_data_reach_the_header_as_pydicom_reads_them() -> None:
    path = reference_file("CT_small.dcm")  # ends with Data Set Trailing Padding
    source = read_source(path)
    whole = dcmread(path)
    assert source.native is not None
    assert 0xFFFCFFFC in source.dataset
    assert source.dataset.get_item(0xFFFCFFFC).value == whole.get_item(0xFFFCFFFC).value
    assert [t for t in whole.keys() if t != pixels.PIXEL_DATA] == list(source.dataset.keys())  # noqa: SIM118


def test_signed_values_with_stray_bits_above_bits_stored_fail_instead_of_being_masked(
    tmp_path: Path,
) -> None:
    ds = dcmread(reference_file("CT_small.dcm"))
    ds.BitsStored, ds.HighBit = 12, 11
    values = ds.pixel_array.astype(np.int16)
    ds.PixelData = (values | np.int16(0x7000)).tobytes()  # junk above bit 11
    path = tmp_path / "junk.dcm"
    ds.save_as(path)
    with pytest.raises(InvalidInput, match=r"bits above Bits Stored 12 .* cannot be kept"):
        read_source(path)


def test_signed_values_stored_without_sign_extension_are_sign_extended(tmp_path: Path) -> None:
    ds = dcmread(reference_file("CT_small.dcm"))
    ds.BitsStored, ds.HighBit = 12, 11
    values = np.clip(ds.pixel_array.astype(np.int16), -2048, 2047)
    ds.PixelData = (values & np.int16(0x0FFF)).tobytes()  # negative values, high bits zero
    path = tmp_path / "unextended.dcm"
    ds.save_as(path)
    source = read_source(path)
    (frame,) = list(source.iter_frames())
    assert np.array_equal(frame, values)
    assert source.spec.bits_stored == 12 and not source.widened
    assert source.native is not None and frame.flags.writeable  # sign-extended: a copy


def test_unsigned_values_above_bits_stored_widen_the_precision_and_stay_as_stored(
    tmp_path: Path,
) -> None:
    ds = dcmread(reference_file("CT_small.dcm"))
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
    values = np.clip(ds.pixel_array.astype(np.int32) + 1024, 0, 4095).astype(np.uint16)
    values[0, :8] = 5000  # an old scanner's overlay bit: 13 bits needed
    ds.PixelData = values.tobytes()
    path = tmp_path / "above.dcm"
    ds.save_as(path)
    source = read_source(path)
    (frame,) = list(source.iter_frames())
    assert np.array_equal(frame, values)  # never masked (5000 would become 904)
    assert source.spec.bits_stored == 13 and source.bits_declared == 12 and source.widened
    assert source.native is not None and not frame.flags.writeable  # the file's bytes, no copy


def test_short_native_pixel_data_is_a_one_line_error_naming_the_instance(tmp_path: Path) -> None:
    ds = dcmread(reference_file("CT_small.dcm"))
    ds.PixelData = ds.PixelData[:1000]
    path = tmp_path / "short.dcm"
    ds.save_as(path)
    (result,) = compress_file(path, [TIERS["j2k-lossless"]], CompressConfig(tmp_path / "out"))
    assert result.status == "failed"
    assert result.reason is not None and "\n" not in result.reason
    assert result.reason.startswith(f"{ds.SOPInstanceUID}: pixel data cannot be decoded")
    assert "short.dcm" not in result.reason


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"]
)
def test_headers_kept_raw_write_the_same_bytes_as_parsed_ones(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiers = [TIERS["j2k-lossless"], TIERS["j2k-r20"]]
    fast = compress_file(reference_file(name), tiers, CompressConfig(tmp_path / "fast"))

    def parsed(ds: Dataset, *, drop: frozenset[BaseTag] = frozenset()) -> Dataset:
        header = pixels.copy_header(ds, drop=drop)
        for elem in header:  # parse every element, as the code before raw pass-through did
            assert not elem.is_raw
        return header

    monkeypatch.setattr("dcmtier.codec.derive.copy_header", parsed)
    slow = compress_file(reference_file(name), tiers, CompressConfig(tmp_path / "slow"))
    for a, b in zip(fast, slow, strict=True):
        assert a.status == b.status == "ok", (a.reason, b.reason)
        assert Path(str(a.output)).read_bytes() == Path(str(b.output)).read_bytes()
    raw = metadata(dcmread(reference_file(name)))
    kept_raw = any(raw.get_item(tag).is_raw for tag in raw.keys())  # noqa: SIM118
    assert kept_raw == (name == "CT_small.dcm")  # only explicit VR little endian stays raw
    assert pixels.PIXEL_DATA not in raw
