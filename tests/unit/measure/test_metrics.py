"""Quality metrics against independent computations on real images degraded by real JPEG 2000.

The references are plain numpy on modality-unit float64 arrays and scikit-image's SSIM with the
parameters docs/concepts/metrics.md names; dcmtier's SSIM shares no code with scikit-image.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openjpeg
import pytest
from pydicom import Dataset, dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000
from skimage.metrics import structural_similarity

from dcmtier.cli import main
from dcmtier.measure import metrics as quality
from dcmtier.measure.datarange import Span
from dcmtier.measure.gates import DEFAULT_GATES, LOSSLESS_GATE
from dcmtier.measure.metrics import (
    ModalityLUT,
    frame_metrics,
    iter_frame_metrics,
)
from dcmtier.measure.store import QUALITY_SCHEMA
from dcmtier.records import file_key
from dcmtier.sample import ct_phantom, write_ct_series
from tests.support import reference_file

RATES = (5, 20, 100)
LUT12 = ModalityLUT(bits_stored=12)


@dataclass(frozen=True)
class Image:
    stored: np.ndarray
    lut: ModalityLUT

    def degraded(self, rate: float) -> np.ndarray:
        """Encode with OpenJPEG at ``rate`` (relative to bits stored) and decode."""
        colour = {"photometric_interpretation": 1} if self.stored.ndim == 3 else {}
        code = openjpeg.encode(
            self.stored, bits_stored=self.lut.bits_stored, compression_ratios=[rate], **colour
        )
        return openjpeg.decode(code).astype(self.stored.dtype)


def _reference_image(name: str) -> Image:
    ds = dcmread(reference_file(name))
    return Image(ds.pixel_array, ModalityLUT.from_dataset(ds))


IMAGES = {
    "CT_small": _reference_image("CT_small.dcm"),
    "MR_small": _reference_image("MR_small.dcm"),
    "rgb": _reference_image("examples_rgb_color.dcm"),
    "sample_ct": Image(ct_phantom(z=0.45), ModalityLUT(bits_stored=12, unit="HU")),
}
CASES = [(name, rate) for name in IMAGES for rate in RATES]
CASE_IDS = [f"{name}-r{rate}" for name, rate in CASES]


def _modality(image: Image, stored: np.ndarray) -> np.ndarray:
    return stored.astype(np.float64) * image.lut.slope + image.lut.intercept


def _skimage_ssim(image: Image, decoded: np.ndarray, span: Span | None = None) -> float:
    """scikit-image's SSIM in modality units with L = the nominal peak, or with L = the
    ``span``'s width on the values less its bottom."""
    low = 0.0 if span is None else span.low
    return float(
        structural_similarity(
            _modality(image, image.stored) - low,
            _modality(image, decoded) - low,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=image.lut.peak if span is None else span.width,
            channel_axis=-1 if image.stored.ndim == 3 else None,
        )
    )


@pytest.fixture(scope="module")
def degraded() -> dict[tuple[str, int], np.ndarray]:
    return {(name, rate): IMAGES[name].degraded(rate) for name, rate in CASES}


@pytest.mark.parametrize(("name", "rate"), CASES, ids=CASE_IDS)
def test_error_metrics_match_plain_numpy_in_modality_units(
    name: str, rate: int, degraded: dict[tuple[str, int], np.ndarray]
) -> None:
    image, decoded = IMAGES[name], degraded[name, rate]
    m = frame_metrics(image.stored, decoded, image.lut, frame=3)
    diff = _modality(image, image.stored) - _modality(image, decoded)
    mse = float(np.mean(diff**2))
    assert mse > 0  # the encode was lossy, so the comparison below is not trivially 0 == 0
    assert m.frame == 3
    assert m.mse == pytest.approx(mse, rel=1e-6)
    assert m.psnr_db == pytest.approx(10 * math.log10(image.lut.peak**2 / mse), rel=1e-6)
    assert m.psnr_peak == (2**image.lut.bits_stored - 1) * abs(image.lut.slope)
    assert m.max_abs_diff == pytest.approx(float(np.max(np.abs(diff))), rel=1e-9)
    assert m.mean_abs_diff == pytest.approx(float(np.mean(np.abs(diff))), rel=1e-6)
    assert m.pixel_match_pct == pytest.approx(100 * np.mean(image.stored == decoded), rel=1e-9)
    assert m.unit == image.lut.unit


@pytest.mark.parametrize(("name", "rate"), CASES, ids=CASE_IDS)
def test_ssim_matches_scikit_image_with_the_wang_parameters(
    name: str, rate: int, degraded: dict[tuple[str, int], np.ndarray]
) -> None:
    image, decoded = IMAGES[name], degraded[name, rate]
    ssim = frame_metrics(image.stored, decoded, image.lut).ssim
    assert ssim is not None
    assert ssim == pytest.approx(_skimage_ssim(image, decoded), abs=1e-6)


@pytest.mark.parametrize(("name", "rate"), CASES, ids=CASE_IDS)
def test_range_relative_ssim_and_psnr_match_scikit_image_and_numpy_with_the_frames_range(
    name: str, rate: int, degraded: dict[tuple[str, int], np.ndarray]
) -> None:
    image, decoded = IMAGES[name], degraded[name, rate]
    m = frame_metrics(image.stored, decoded, image.lut)
    values = np.sort(_modality(image, image.stored), axis=None)
    k = max(1, values.size // 1000)
    span = Span(low=values[k], width=values[-1 - k] - values[k])
    assert m.data_range == pytest.approx(span.width, rel=1e-9)
    assert m.ssim_range == pytest.approx(_skimage_ssim(image, decoded, span), abs=1e-6)
    assert m.ssim_range is not None and m.ssim is not None
    if name == "rgb":  # a photograph fills its 8 bits: both measures are the same
        assert (m.data_range, m.ssim_range) == (m.psnr_peak, m.ssim)
    else:  # the others use part of their bits: a smaller L, a lower SSIM
        assert m.data_range < m.psnr_peak and m.ssim_range < m.ssim
    assert m.psnr_db_range == pytest.approx(10 * math.log10(m.data_range**2 / m.mse), rel=1e-6)
    given = frame_metrics(image.stored, decoded, image.lut, span=Span(low=span.low, width=100.0))
    assert given.data_range == 100.0


@pytest.mark.parametrize("name", IMAGES, ids=list(IMAGES))
def test_quality_falls_as_the_rate_rises(
    name: str, degraded: dict[tuple[str, int], np.ndarray]
) -> None:
    image = IMAGES[name]
    metrics = [frame_metrics(image.stored, degraded[name, r], image.lut) for r in RATES]
    assert [m.mse for m in metrics] == sorted(m.mse for m in metrics)
    assert [m.ssim for m in metrics] == sorted((m.ssim or 0 for m in metrics), reverse=True)


@pytest.mark.parametrize("name", IMAGES, ids=list(IMAGES))
def test_identical_frames_are_perfect(name: str) -> None:
    image = IMAGES[name]
    m = frame_metrics(image.stored, image.stored.copy(), image.lut)
    assert (m.mse, m.psnr_db, m.ssim) == (0.0, math.inf, 1.0)
    assert (m.psnr_db_range, m.ssim_range) == (math.inf, 1.0)
    assert (m.pixel_match_pct, m.max_abs_diff, m.mean_abs_diff) == (100.0, 0.0, 0.0)


@pytest.mark.parametrize("name", IMAGES, ids=list(IMAGES))
def test_identical_frames_skip_the_filters_with_the_value_the_filters_give(name: str) -> None:
    image = IMAGES[name]
    planes = quality._planes(image.stored)
    scales = ((image.lut.peak, 0.0), (100.0, -50.0))
    assert quality._ssim(planes, planes.copy(), image.lut, scales) == [1.0, 1.0]
    tiny = image.stored[:10, :10]
    assert frame_metrics(tiny, tiny.copy(), image.lut).ssim is None


def test_colour_ssim_is_the_mean_of_the_per_sample_ssims(
    degraded: dict[tuple[str, int], np.ndarray],
) -> None:
    image, decoded = IMAGES["rgb"], degraded["rgb", 20]
    per_sample = [
        frame_metrics(image.stored[..., s], decoded[..., s], image.lut).ssim for s in range(3)
    ]
    whole = frame_metrics(image.stored, decoded, image.lut)
    assert whole.ssim == pytest.approx(np.mean(per_sample), abs=1e-7)  # float32 rounding
    assert len(set(per_sample)) == 3  # the samples really differ


def test_signed_and_unsigned_storage_of_the_same_hu_give_the_same_metrics() -> None:
    hu = IMAGES["sample_ct"]
    decoded = np.clip(hu.degraded(20), -1024, 2047)  # what an unsigned 12-bit decode can hold
    as_unsigned = ModalityLUT(intercept=-1024, bits_stored=12, unit="HU")
    signed = frame_metrics(hu.stored, decoded, hu.lut)
    unsigned = frame_metrics(
        (hu.stored + 1024).astype(np.uint16), (decoded + 1024).astype(np.uint16), as_unsigned
    )
    for field in ("mse", "psnr_db", "ssim", "pixel_match_pct", "max_abs_diff", "mean_abs_diff"):
        assert getattr(unsigned, field) == pytest.approx(getattr(signed, field), rel=1e-7)


def test_a_slope_scales_the_errors_and_leaves_psnr_and_ssim_unchanged() -> None:
    image, decoded = IMAGES["sample_ct"], IMAGES["sample_ct"].degraded(20)
    plain = frame_metrics(image.stored, decoded, image.lut)
    scaled = frame_metrics(image.stored, decoded, ModalityLUT(slope=2.5, bits_stored=12))
    assert scaled.mse == pytest.approx(plain.mse * 6.25, rel=1e-12)
    assert scaled.max_abs_diff == pytest.approx(plain.max_abs_diff * 2.5, rel=1e-12)
    assert scaled.psnr_peak == plain.psnr_peak * 2.5
    assert scaled.psnr_db == pytest.approx(plain.psnr_db, rel=1e-12)
    assert scaled.ssim == pytest.approx(plain.ssim, abs=1e-7)


def test_frames_below_the_ssim_window_have_no_ssim_but_every_other_metric() -> None:
    a = np.arange(100, dtype=np.int16).reshape(10, 10)
    m = frame_metrics(a, a + 1, LUT12)
    assert m.ssim is None
    assert (m.mse, m.max_abs_diff, m.pixel_match_pct) == (1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="win_size"):  # scikit-image has no value for it either
        structural_similarity(a * 1.0, a + 1.0, gaussian_weights=True, data_range=4095)


def test_an_11x11_frame_has_the_ssim_of_its_single_window() -> None:
    rng = np.random.default_rng(11)
    a = rng.integers(0, 4096, (11, 11)).astype(np.int16)
    b = np.clip(a + rng.integers(-1500, 1501, (11, 11)), 0, 4095).astype(np.int16)
    expected = _skimage_ssim(Image(a, LUT12), b)
    assert frame_metrics(a, b, LUT12).ssim == pytest.approx(expected, abs=1e-6)
    assert expected < 0.9


@pytest.mark.parametrize(
    ("original", "decoded"),
    [
        (np.zeros((16, 16), np.int16), np.zeros((16, 15), np.int16)),
        (np.zeros((16, 16), np.float32), np.zeros((16, 16), np.float32)),
        (np.zeros(16, np.int16), np.zeros(16, np.int16)),
    ],
    ids=["shapes-differ", "not-integers", "not-a-frame"],
)
def test_unusable_frames_are_refused(original: np.ndarray, decoded: np.ndarray) -> None:
    with pytest.raises(ValueError):
        frame_metrics(original, decoded, LUT12)


def test_iter_frame_metrics_numbers_frames_and_refuses_a_count_mismatch(
    degraded: dict[tuple[str, int], np.ndarray],
) -> None:
    image = IMAGES["MR_small"]
    originals = np.stack([image.stored] * 3)
    decoded = np.stack([image.stored, degraded["MR_small", 5], degraded["MR_small", 100]])
    metrics = list(iter_frame_metrics(originals, decoded, image.lut))
    assert [m.frame for m in metrics] == [0, 1, 2]
    assert metrics[1] == frame_metrics(image.stored, decoded[1], image.lut, frame=1)
    assert metrics[0].mse == 0 < metrics[1].mse < metrics[2].mse
    with pytest.raises(ValueError):
        list(iter_frame_metrics(originals, decoded[:2], image.lut))


def _dataset(**attrs: object) -> Dataset:
    ds = Dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def _enhanced_with_shared_rescale() -> Dataset:
    transform = _dataset(RescaleSlope="0.5", RescaleIntercept="-10", RescaleType="US")
    shared = _dataset(PixelValueTransformationSequence=[transform])
    return _dataset(Modality="MR", BitsStored=12, SharedFunctionalGroupsSequence=[shared])


@pytest.mark.parametrize(
    ("ds", "expected"),
    [
        (
            dcmread(reference_file("CT_small.dcm")),
            ModalityLUT(intercept=-1024, bits_stored=16, unit="HU"),
        ),
        (dcmread(reference_file("MR_small.dcm")), ModalityLUT(bits_stored=16)),
        (dcmread(reference_file("examples_rgb_color.dcm")), ModalityLUT(bits_stored=8)),
        (_dataset(Modality="CT", BitsStored=12), ModalityLUT(bits_stored=12)),
        (
            _dataset(Modality="PT", BitsStored=16, RescaleSlope="2", RescaleIntercept="0"),
            ModalityLUT(slope=2, bits_stored=16, unit="modality value"),
        ),
        (
            _dataset(Modality="XA", BitsStored=10, RescaleSlope="1", RescaleIntercept="5",
                     RescaleType="OD"),
            ModalityLUT(intercept=5, bits_stored=10, unit="OD"),
        ),
        (
            _enhanced_with_shared_rescale(),
            ModalityLUT(slope=0.5, intercept=-10, bits_stored=12, unit="US"),
        ),
    ],
    ids=["CT_small", "MR_small", "rgb", "ct-without-rescale", "rescale-without-type",
         "rescale-type", "enhanced-shared-groups"],
)  # fmt: skip
def test_modality_lut_reads_rescale_and_names_the_unit(ds: Dataset, expected: ModalityLUT) -> None:
    assert ModalityLUT.from_dataset(ds) == expected


@pytest.mark.parametrize(
    ("slope", "bits"), [(0.0, 12), (1.0, 0), (1.0, 33)], ids=["zero-slope", "0-bits", "33-bits"]
)
def test_a_modality_lut_without_a_usable_peak_is_refused(slope: float, bits: int) -> None:
    with pytest.raises(ValueError):
        ModalityLUT(slope=slope, bits_stored=bits)


# The survey's rates are pixel ratios of the 16-bit container; OpenJPEG's are relative to the
# 12 bits stored (docs/concepts/codec-traps.md), hence the 12 / 16.
@pytest.mark.parametrize(
    ("band", "passing_rate", "failing_rate"),
    [("diagnosis", 5, 20), ("review", 20, 200), ("preview", 100, 500), ("thumbnail", 300, 1000),
     ("extreme", 1000, None)],
    ids=["diagnosis", "review", "preview", "thumbnail", "extreme"],
)  # fmt: skip
def test_sample_ct_passes_its_bands_gate_at_the_bands_worst_rate_and_fails_beyond(
    band: str, passing_rate: int, failing_rate: int | None
) -> None:
    image, gate = IMAGES["sample_ct"], DEFAULT_GATES[band]
    passing = frame_metrics(image.stored, image.degraded(passing_rate * 12 / 16), image.lut)
    assert gate.check(passing) is None
    if failing_rate is None:  # nothing is worse than extreme but a broken encode:
        broken = np.clip(image.stored.astype(np.int32) * 2, -2048, 2047).astype(np.int16)
        assert gate.check(frame_metrics(image.stored, broken, image.lut)) is not None
        return
    failing = frame_metrics(image.stored, image.degraded(failing_rate * 12 / 16), image.lut)
    assert gate.check(failing) is not None


def test_lossless_jpeg2000_passes_the_lossless_gate() -> None:
    image = IMAGES["sample_ct"]
    code = openjpeg.encode(image.stored, bits_stored=12)
    m = frame_metrics(image.stored, openjpeg.decode(code), image.lut)
    assert LOSSLESS_GATE.check(m) is None


def test_metric_fields_are_columns_of_the_quality_dataset() -> None:
    row = frame_metrics(IMAGES["CT_small"].stored, IMAGES["CT_small"].stored, LUT12).as_dict()
    assert set(row) <= set(QUALITY_SCHEMA.names)
    assert set(row) >= {"mse", "psnr_db", "psnr_peak", "ssim", "pixel_match_pct", "unit"}
    assert set(row) >= {"psnr_db_range", "ssim_range", "data_range"}


# --- the ``dcmtier quality`` command ---------------------------------------------------------


def _run_command(argv: list[str]) -> int:
    return main(["quality", *argv])


@pytest.fixture(scope="module")
def ct_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A sample CT slice and a J2K-compressed lossy copy of it (decoded by pydicom on read)."""
    root = tmp_path_factory.mktemp("ct-pair")
    original = write_ct_series(root, slices=1, rows=128, columns=128, signed=False)[0]
    ds = dcmread(original)
    ds.PixelData = encapsulate(
        [openjpeg.encode(ds.pixel_array, bits_stored=12, compression_ratios=[10])]
    )
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000
    derived = root / "derived.dcm"
    ds.save_as(derived)
    return original, derived


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_command_json_equals_frame_metrics_of_the_decoded_files(
    ct_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    original, derived = ct_pair
    assert _run_command([str(original), str(derived), "--json"]) == 0
    [row] = _json_lines(capsys.readouterr().out)
    ds = dcmread(original)
    expected = frame_metrics(
        ds.pixel_array, dcmread(derived).pixel_array, ModalityLUT.from_dataset(ds)
    )
    assert expected.mse > 0
    keys = {"original": ds.SOPInstanceUID, "derived": dcmread(derived).SOPInstanceUID}
    assert row == expected.as_dict() | keys  # files named by key, not path
    assert row["unit"] == "HU"
    assert _run_command([str(original), str(derived), "--json", "--show-paths"]) == 0
    [row] = _json_lines(capsys.readouterr().out)
    assert (row["original"], row["derived"]) == (str(original), str(derived))


def test_command_table_names_the_unit_and_peak(
    ct_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_command([str(p) for p in ct_pair]) == 0
    out = capsys.readouterr().out
    assert "metrics in HU, PSNR peak 4095" in out
    assert "against each frame's own range" in out
    assert "SSIM" in out


@pytest.mark.parametrize(
    ("gate", "expected_code"), [("diagnosis", 1), ("preview", 0)], ids=["diagnosis", "preview"]
)
def test_command_gate_sets_the_exit_status(
    ct_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str], gate: str, expected_code: int
) -> None:
    assert _run_command([*map(str, ct_pair), "--json", "--gate", gate]) == expected_code
    [row] = _json_lines(capsys.readouterr().out)
    assert row["gate"] == gate
    assert (row["violation"] is None) == (expected_code == 0)


def test_command_reports_identical_files_as_lossless_with_null_psnr(
    ct_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    original = str(ct_pair[0])
    assert _run_command([original, original, "--json", "--gate", "lossless"]) == 0
    [row] = _json_lines(capsys.readouterr().out)
    assert (row["psnr_db"], row["ssim"], row["pixel_match_pct"]) == (None, 1.0, 100.0)


def test_command_compares_every_frame_of_a_multi_frame_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = reference_file("SC_rgb_rle_2frame.dcm")  # RLE: pydicom decodes it on read
    ds = dcmread(source)
    frames = ds.pixel_array.copy()
    frames[1, 10:20, 10:20] ^= 1  # change 100 pixels of frame 1 by one level
    ds.PixelData = frames.tobytes()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    derived = tmp_path / "derived.dcm"
    ds.save_as(derived)
    assert _run_command([str(source), str(derived), "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert [(r["frame"], r["max_abs_diff"]) for r in rows] == [(0, 0.0), (1, 1.0)]


@pytest.mark.parametrize("broken", ["missing", "not-dicom", "other-size"])
def test_command_names_the_file_it_cannot_compare_and_exits_1(
    ct_pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: str
) -> None:
    bad = tmp_path / "bad.dcm"
    if broken == "not-dicom":
        bad.write_text("not DICOM\n")
    elif broken == "other-size":
        bad = write_ct_series(tmp_path, slices=1, rows=64, columns=64)[0]
    assert _run_command([str(ct_pair[0]), str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    key = file_key(bad, str(dcmread(bad).SOPInstanceUID) if broken == "other-size" else None)
    assert line.startswith(f"dcmtier: {key}: ")
    assert bad.name not in line and str(tmp_path) not in line
    assert _run_command([str(ct_pair[0]), str(bad), "--show-paths"]) == 1
    assert capsys.readouterr().err.startswith(f"dcmtier: {bad}: ")
