"""The synthetic CT series: reproducible bytes, valid geometry and UIDs, CT-like pixel content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openjpeg
import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from dcmtier.cli import main
from dcmtier.sample import FOV_MM, ct_phantom, write_ct_series

SMALL = {"slices": 4, "rows": 64, "columns": 64}


def _read(paths: list[Path]) -> list[Dataset]:
    return [dcmread(p) for p in paths]


def _hu(ds: Dataset) -> np.ndarray:
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[Dataset]:
    return _read(write_ct_series(tmp_path_factory.mktemp("series"), slices=6, rows=96, columns=80))


def test_same_arguments_write_byte_identical_files(tmp_path: Path) -> None:
    first = write_ct_series(tmp_path / "a", seed=7, **SMALL)
    second = write_ct_series(tmp_path / "b", seed=7, **SMALL)
    assert [p.name for p in first] == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))


def test_distinct_seeds_give_distinct_studies_series_and_pixels(tmp_path: Path) -> None:
    one = dcmread(write_ct_series(tmp_path / "1", seed=1, **SMALL)[0])
    two = dcmread(write_ct_series(tmp_path / "2", seed=2, **SMALL)[0])
    assert one.StudyInstanceUID != two.StudyInstanceUID
    assert one.SeriesInstanceUID != two.SeriesInstanceUID
    assert one.SOPInstanceUID != two.SOPInstanceUID
    assert not np.array_equal(one.pixel_array, two.pixel_array)


def test_a_given_study_uid_is_used_and_each_call_makes_a_new_series(tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.8.498.1234"
    signed = dcmread(write_ct_series(tmp_path / "s", study_uid=study, **SMALL)[0])
    unsigned = dcmread(write_ct_series(tmp_path / "u", study_uid=study, signed=False, **SMALL)[0])
    assert signed.StudyInstanceUID == unsigned.StudyInstanceUID == study
    assert signed.SeriesInstanceUID != unsigned.SeriesInstanceUID


def test_one_series_with_unique_instances_and_matching_file_meta(series: list[Dataset]) -> None:
    assert len({ds.StudyInstanceUID for ds in series}) == 1
    assert len({ds.SeriesInstanceUID for ds in series}) == 1
    assert len({ds.FrameOfReferenceUID for ds in series}) == 1
    assert len({ds.SOPInstanceUID for ds in series}) == len(series)
    for ds in series:
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == CTImageStorage
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.preamble == b"\0" * 128


def test_files_carry_the_identity_and_dates_asked_for(tmp_path: Path) -> None:
    ds = dcmread(
        write_ct_series(
            tmp_path, study_date="20230301", patient_id="PAT^7", modality="MG", **SMALL
        )[0]
    )
    assert ds.StudyDate == ds.SeriesDate == ds.ContentDate == "20230301"
    assert ds.PatientID == "PAT^7"
    assert ds.PatientName == "PAT^7"
    assert ds.Modality == "MG"
    assert ds.Manufacturer == "dcmtier-sample"
    assert ds.AccessionNumber
    assert len(ds.StudyTime) == 6


def test_slices_step_along_z_by_the_slice_thickness(series: list[Dataset]) -> None:
    z = np.array([float(ds.ImagePositionPatient[2]) for ds in series])
    thickness = float(series[0].SliceThickness)
    np.testing.assert_allclose(np.abs(np.diff(z)), thickness)
    assert len(set(np.sign(np.diff(z)))) == 1  # monotonic
    assert [int(ds.InstanceNumber) for ds in series] == list(range(1, len(series) + 1))
    for ds in series:
        assert float(ds.SliceLocation) == float(ds.ImagePositionPatient[2])
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]


def test_pixel_spacing_and_origin_centre_the_field_of_view(series: list[Dataset]) -> None:
    ds = series[0]
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    assert row_mm == col_mm
    assert col_mm * ds.Columns == pytest.approx(FOV_MM, rel=1e-5)
    x0, y0 = (float(v) for v in ds.ImagePositionPatient[:2])
    assert x0 + (ds.Columns - 1) / 2 * col_mm == pytest.approx(0, abs=1e-3)
    assert y0 + (ds.Rows - 1) / 2 * row_mm == pytest.approx(0, abs=1e-3)


@pytest.mark.parametrize(
    ("signed", "expected"),
    [(True, (1, 0, -2048, 2047)), (False, (0, -1024, 0, 4095))],
    ids=["signed", "unsigned"],
)
def test_pixel_module_is_12_of_16_bits_in_the_requested_representation(
    tmp_path: Path, signed: bool, expected: tuple[int, int, int, int]
) -> None:
    representation, intercept, low, high = expected
    ds = dcmread(write_ct_series(tmp_path, signed=signed, **SMALL)[1])
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11)
    assert ds.PixelRepresentation == representation
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, intercept)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.SamplesPerPixel == 1
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40.0, 400.0)
    stored = ds.pixel_array
    assert stored.shape == (64, 64)
    assert low <= stored.min() and stored.max() <= high


def test_signed_and_unsigned_series_hold_the_same_hu(tmp_path: Path) -> None:
    signed = _read(write_ct_series(tmp_path / "s", signed=True, **SMALL))
    unsigned = _read(write_ct_series(tmp_path / "u", signed=False, **SMALL))
    for s, u in zip(signed, unsigned, strict=True):
        assert not np.array_equal(s.pixel_array, u.pixel_array)  # stored values do differ
        np.testing.assert_array_equal(_hu(s), _hu(u))


@pytest.mark.parametrize("z", [0.1, 0.45, 0.9], ids=["chest", "heart", "abdomen"])
def test_phantom_has_air_soft_tissue_and_bone_in_hu(z: float) -> None:
    hu = ct_phantom(z=z)
    assert hu.dtype == np.int16
    assert hu.min() >= -1024 and hu.max() <= 2047
    corners = np.concatenate([hu[:20, :20].ravel(), hu[-20:, -20:].ravel()])
    assert abs(float(np.mean(corners)) + 1000) < 5  # air
    assert 8 < float(np.std(corners)) < 20  # CT-like noise
    centre = hu[236:276, 236:276] if z > 0.5 else hu[160:200, 236:276]
    assert 0 < float(np.median(centre)) < 100  # soft tissue (mediastinum or liver)
    assert np.count_nonzero(hu > 700) > 100  # bone


def test_lungs_appear_in_the_chest_and_leave_the_abdomen() -> None:
    def lung_pixels(z: float) -> int:
        right_lung = ct_phantom(z=z)[190:300, 120:190]  # 110 x 70 pixels around its centre
        return int(np.count_nonzero((right_lung > -950) & (right_lung < -700)))

    assert lung_pixels(0.3) > 6_000
    assert lung_pixels(0.95) == 0


@pytest.mark.parametrize("z", [0.1, 0.45, 0.9], ids=["chest", "heart", "abdomen"])
def test_lossless_jpeg2000_ratio_is_ct_like(z: float) -> None:
    hu = ct_phantom(z=z, index=3)
    code = openjpeg.encode(hu, bits_stored=12)
    np.testing.assert_array_equal(openjpeg.decode(code), hu)
    ratio = hu.size * 2 / len(code)
    assert 2.5 <= ratio <= 4.0


def _run_command(argv: list[str]) -> int:
    return main(argv)


def test_sample_command_prints_the_file_count_and_study_uid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run_command(
        ["sample", str(tmp_path), "--slices", "3", "--size", "32", "--unsigned", "--seed", "5"]
    )
    out = capsys.readouterr().out
    files = sorted(tmp_path.glob("*.dcm"))
    ds = dcmread(files[0])
    assert code == 0
    assert len(files) == 3
    assert "3 files" in out
    assert ds.StudyInstanceUID in out
    assert (ds.Rows, ds.Columns, ds.PixelRepresentation) == (32, 32, 0)


def test_sample_command_refuses_a_malformed_study_date(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        _run_command(["sample", str(tmp_path), "--study-date", "2024-01-15"])
    assert exc.value.code == 2
    assert not list(tmp_path.iterdir())
