"""The source frame's data range: a percentile span that one hot pixel does not widen, in
modality units whatever the storage."""

from __future__ import annotations

import numpy as np
import pytest

from dcmtier.measure.datarange import Span, data_range, frame_span, trimmed_count
from dcmtier.sample import ct_phantom


def _mr(rows: int = 256, columns: int = 256, high: int = 600) -> np.ndarray:
    """A 12-bit MR-like frame with values 0..``high`` (the phantom rescaled)."""
    hu = ct_phantom(rows, columns, z=0.4).astype(np.float64)
    return np.rint((hu - hu.min()) * high / (hu.max() - hu.min())).astype(np.uint16)


def test_the_range_is_the_span_between_the_thousandths_at_each_end() -> None:
    frame = _mr()
    values = np.sort(frame, axis=None).astype(np.int64)
    k = frame.size // 1000
    assert data_range(frame) == values[-1 - k] - values[k]
    assert 0.9 * 600 < data_range(frame) <= 600


@pytest.mark.parametrize("hot", [4095, 65535], ids=["12-bit-max", "16-bit-max"])
def test_one_hot_pixel_does_not_widen_the_range(hot: int) -> None:
    frame = _mr()
    before = data_range(frame)
    frame[17, 23] = hot
    assert data_range(frame) == before
    frame[40, 50] = 0  # a dead one neither
    assert data_range(frame) == before


def test_even_a_tiny_frame_leaves_one_value_out_at_each_end() -> None:
    frame = np.full((4, 4), 100, dtype=np.uint16)
    frame[0, 0], frame[3, 3], frame[1, 1] = 4095, 0, 110
    assert trimmed_count(16) == 1
    assert data_range(frame) == 10.0


@pytest.mark.parametrize("slope", [1.0, 0.5, -2.0], ids=["slope-1", "slope-0.5", "slope--2"])
def test_a_constant_frame_gets_one_stored_step(slope: float) -> None:
    assert data_range(np.full((64, 64), 1000, dtype=np.int16), slope) == abs(slope)
    assert data_range(np.zeros((1, 1), dtype=np.uint8), slope) == abs(slope)


def test_signed_and_unsigned_storage_of_the_same_hu_give_the_same_range() -> None:
    hu = ct_phantom(128, 128, z=0.5)
    unsigned = (hu.astype(np.int32) + 1024).astype(np.uint16)  # intercept -1024
    assert data_range(hu) == data_range(unsigned) > 1500
    assert frame_span(hu) == frame_span(unsigned, 1.0, -1024.0)
    assert frame_span(hu).low == -1024.0  # the phantom's air


def test_a_negative_slope_puts_the_bottom_at_the_highest_stored_value() -> None:
    frame = _mr()
    top = np.sort(frame, axis=None)[-1 - frame.size // 1000]
    assert frame_span(frame, -2.0, 100.0) == Span(
        low=-2.0 * top + 100.0, width=2 * data_range(frame)
    )


def test_the_range_is_in_modality_units_times_the_slopes_magnitude() -> None:
    frame = _mr()
    assert data_range(frame, 2.5) == pytest.approx(2.5 * data_range(frame))
    assert data_range(frame, -0.25) == pytest.approx(0.25 * data_range(frame))


def test_colour_samples_are_pooled() -> None:
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 50, 200
    assert data_range(rgb) == 190.0


def test_an_empty_frame_or_a_zero_slope_is_refused() -> None:
    with pytest.raises(ValueError, match="no data range"):
        data_range(np.zeros((0, 5), dtype=np.uint16))
    with pytest.raises(ValueError, match="no data range"):
        data_range(_mr(), 0.0)
