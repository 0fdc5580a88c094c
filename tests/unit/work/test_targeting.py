"""The search for the highest ratio meeting a gate: bisect over the ladder's layers, then refine
between two layers by packets; every answer decodes within it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from skimage.metrics import structural_similarity

from dcmtier.codec import backends as codecs
from dcmtier.codec.layering import ladder_layers
from dcmtier.codec.pixels import SourceImage, read_source
from dcmtier.measure.datarange import Span
from dcmtier.measure.gates import Gate, gate_for
from dcmtier.measure.metrics import ModalityLUT, frame_metrics
from dcmtier.sample import write_ct_series
from dcmtier.tiers import TIERS
from dcmtier.work.targeting import FrameJudge, search_layers, target_frame


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> SourceImage:
    (path,) = write_ct_series(
        tmp_path_factory.mktemp("ct"), slices=1, rows=96, columns=96, noise_hu=50.0
    )
    return read_source(path)


def _max_diff(source: SourceImage, data: bytes) -> float:
    frame = next(source.iter_frames())
    decoded = codecs.backend("j2k").decode(data, source.spec).reshape(frame.shape)
    lut = ModalityLUT.from_dataset(source.dataset)
    return frame_metrics(frame, decoded, lut).max_abs_diff


@pytest.mark.parametrize("bound", [20.0, 60.0, 150.0], ids=["20", "60", "150"])
def test_the_cut_found_meets_the_bound_and_the_one_before_it_does_not(
    source: SourceImage, bound: float
) -> None:
    frame = next(source.iter_frames())
    lut = ModalityLUT.from_dataset(source.dataset)
    judge = FrameJudge(source, TIERS["j2k-maxerr20"], 0, frame, Gate(max_abs_diff=bound), lut)
    layers, _ = ladder_layers(source, 0, frame)
    found = search_layers(layers, judge)
    assert found is not None
    layer, packets = found
    assert _max_diff(source, layers.cut(layer, packets)) <= bound
    shorter = layers.cut(layer, packets - 1) if packets > 0 else layers.cut(layer - 1)
    assert _max_diff(source, shorter) > bound
    assert judge.decodes <= 9


def test_a_partial_layer_is_a_valid_codestream_between_two_layers(
    source: SourceImage, tmp_path: Path
) -> None:
    frame = next(source.iter_frames())
    layers, _ = ladder_layers(source, 0, frame)
    middle = layers.count // 2
    sizes = [len(layers.cut(middle - 1)), len(layers.cut(middle, 3)), len(layers.cut(middle))]
    assert sizes[0] < sizes[1] < sizes[2]
    decoded = codecs.backend("j2k").decode(layers.cut(middle, 3), source.spec)
    assert decoded.size == frame.size


def test_a_bound_no_lossy_cut_meets_is_met_by_a_reversible_frame(source: SourceImage) -> None:
    frame = next(source.iter_frames())
    lut = ModalityLUT.from_dataset(source.dataset)
    judge = FrameJudge(source, TIERS["j2k-maxerr20"], 0, frame, Gate(max_abs_diff=0.0), lut)
    found = target_frame(judge, None)
    assert found.encoded.params["reversible"] is True
    decoded = codecs.backend("j2k").decode(found.encoded.data, source.spec)
    assert np.array_equal(decoded.reshape(frame.shape), frame)


def test_the_modality_limit_caps_the_ratio(source: SourceImage) -> None:
    frame = next(source.iter_frames())
    lut = ModalityLUT.from_dataset(source.dataset)
    gate = Gate(max_abs_diff=1000.0)
    free = target_frame(FrameJudge(source, TIERS["j2k-maxerr150"], 0, frame, gate, lut), None)
    capped = target_frame(
        FrameJudge(source, TIERS["j2k-maxerr150"], 0, frame, gate, lut, max_ratio=8.0), None
    )
    pixel_bytes = source.spec.pixel_bytes
    assert pixel_bytes / len(free.encoded.data) > 8.0 >= pixel_bytes / len(capped.encoded.data)


# --- SSIM bounds against the frame's own range (issue #31) ----------------------------------


def _rescaled(root: Path, name: str, *, high: int, bits: int, modality: str) -> SourceImage:
    """The sample CT slice with its values stretched or squeezed onto 0..``high``, declared
    with ``bits`` Bits Stored: as the scanner files of issue #31 (a CT stored in 16 bits with
    values 0..1,196, an MR stored in 12 bits with values 0..600) and a 12-bit CT filling 4095."""
    (path,) = write_ct_series(root / name, slices=1, rows=256, columns=256)
    ds = dcmread(path)
    hu = ds.pixel_array.astype(np.float64)
    stored = np.rint((hu - hu.min()) * high / (hu.max() - hu.min())).astype(np.uint16)
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.Modality = bits, bits - 1, 0, modality
    if modality == "MR":
        del ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType
    else:
        ds.RescaleIntercept = -1024
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return read_source(path)


RESCALED = {
    "ct16-1200": {"high": 1200, "bits": 16, "modality": "CT"},
    "mr12-600": {"high": 600, "bits": 12, "modality": "MR"},
    "ct12-full": {"high": 4095, "bits": 12, "modality": "CT"},
}


@pytest.fixture(scope="module")
def rescaled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SourceImage]:
    root = tmp_path_factory.mktemp("rescaled")
    return {name: _rescaled(root, name, **kw) for name, kw in RESCALED.items()}  # type: ignore[arg-type]


def _ssim0_98(source: SourceImage, *, span: Span | None = None) -> tuple[float, np.ndarray]:
    """The ratio and decoded frame ``j2k-ssim0.98`` gives (``span``: judge SSIM against that
    range instead of the frame's)."""
    tier = TIERS["j2k-ssim0.98"]
    frame = next(source.iter_frames())
    lut = ModalityLUT.from_dataset(source.dataset)
    judge = FrameJudge(source, tier, 0, frame, gate_for(tier), lut)  # type: ignore[arg-type]
    if span is not None:
        judge.span = span
    data = target_frame(judge, None).encoded.data
    decoded = codecs.backend("j2k").decode(data, source.spec).reshape(frame.shape)
    return source.spec.pixel_bytes / len(data), decoded


def _skimage(frame: np.ndarray, decoded: np.ndarray, low: float, width: float) -> float:
    """scikit-image's SSIM of the stored values less ``low``, with ``data_range`` = ``width``
    (the slope of these images is 1, so stored and modality units differ by the intercept)."""
    return float(
        structural_similarity(
            frame.astype(np.float64) - low, decoded.astype(np.float64) - low,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=width,
        )
    )  # fmt: skip


def _own(frame: np.ndarray) -> tuple[float, float]:
    """The frame's own range as issue #31 measured it: its minimum, and max - min."""
    return float(frame.min()), float(frame.max()) - float(frame.min())


@pytest.mark.parametrize("name", ["ct16-1200", "mr12-600"])
def test_the_ssim_bound_holds_against_the_frames_own_max_minus_min_by_scikit_image(
    rescaled: dict[str, SourceImage], name: str
) -> None:
    source = rescaled[name]
    frame = next(source.iter_frames())
    ratio, decoded = _ssim0_98(source)
    assert _skimage(frame, decoded, *_own(frame)) >= 0.98
    # against the bits stored the same bound lets the frame go to the top of the ladder
    lut = ModalityLUT.from_dataset(source.dataset)
    nominal_ratio, nominal = _ssim0_98(source, span=Span(low=0.0, width=lut.peak))
    assert _skimage(frame, nominal, *_own(frame)) < 0.98
    assert nominal_ratio > 3 * ratio


def test_a_ct_filling_its_12_bits_gets_the_ratio_it_got_against_the_bits_stored(
    rescaled: dict[str, SourceImage],
) -> None:
    source = rescaled["ct12-full"]
    lut = ModalityLUT.from_dataset(source.dataset)
    ratio, _ = _ssim0_98(source)
    nominal_ratio, _ = _ssim0_98(source, span=Span(low=0.0, width=lut.peak))
    assert ratio == pytest.approx(nominal_ratio, rel=0.1)


@pytest.mark.parametrize("name", ["ct16-1200", "mr12-600"])
def test_a_rate_tiers_gate_no_longer_passes_a_frame_that_only_saturation_made_look_good(
    rescaled: dict[str, SourceImage], name: str
) -> None:
    source = rescaled[name]
    frame = next(source.iter_frames())
    lut = ModalityLUT.from_dataset(source.dataset)
    data = codecs.backend("j2k").encode(frame, source.spec, TIERS["j2k-r100"]).data
    decoded = codecs.backend("j2k").decode(data, source.spec).reshape(frame.shape)
    m = frame_metrics(frame, decoded, lut)
    review = gate_for(TIERS["j2k-r20"])
    assert review is not None and review.min_psnr_db is not None and review.min_ssim is not None
    assert m.psnr_db > review.min_psnr_db and (m.ssim or 0) > review.min_ssim  # saturated
    rule = review.check(m)
    assert rule is not None and "against the frame's range" in rule
    assert _skimage(frame, decoded, *_own(frame)) < review.min_ssim  # scikit-image agrees
