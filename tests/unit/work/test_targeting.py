"""The search for the highest ratio meeting a gate: bisect over the ladder's layers, then refine
between two layers by packets; every answer decodes within it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dcmtier.codec import backends as codecs
from dcmtier.codec.layering import ladder_layers
from dcmtier.codec.pixels import SourceImage, read_source
from dcmtier.measure.gates import Gate
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
