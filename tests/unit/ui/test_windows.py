"""The worst frame through the modality's display windows: which windows, and their pixels."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dcmtier.storage import access
from dcmtier.ui.difference import difference_image
from dcmtier.ui.windows import Window, header_window, to_bytes, windows_for


def _dataset(modality: str, **elements: object) -> Dataset:
    ds = Dataset()
    ds.Modality = modality
    for name, value in elements.items():
        setattr(ds, name, value)
    return ds


def test_ct_gets_soft_tissue_lung_and_bone_whatever_its_header_says() -> None:
    ds = _dataset("CT", WindowCenter=50, WindowWidth=350)
    found = windows_for(ds, np.zeros((4, 4)))
    assert [(w.name, w.width, w.center) for w in found] == [
        ("soft tissue", 400.0, 40.0), ("lung", 1500.0, -600.0), ("bone", 1800.0, 400.0),
    ]  # fmt: skip


def test_another_modality_gets_the_headers_first_window_else_a_percentile_window() -> None:
    mr = _dataset("MR", WindowCenter=MultiValue(float, [600, 300]), WindowWidth=[1200, 500])
    assert windows_for(mr, np.zeros((4, 4))) == [Window("header", 1200.0, 600.0)]
    shared = _dataset("MR")
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 80, 160
    group = Dataset()
    group.FrameVOILUTSequence = [voi]
    shared.SharedFunctionalGroupsSequence = [group]
    assert header_window(shared) == Window("header", 160.0, 80.0)
    values = np.arange(10_000, dtype=np.float64).reshape(100, 100)
    (window,) = windows_for(_dataset("MR"), values)
    low, high = np.percentile(values, (0.5, 99.5))
    assert window.name == "0.5-99.5 percentile"
    assert (window.width, window.center) == pytest.approx((high - low, (low + high) / 2))
    assert windows_for(_dataset("MR", WindowCenter=10, WindowWidth=0), values)[0].name != "header"


def test_a_window_maps_its_range_linearly_to_8_bits_and_monochrome1_inverts() -> None:
    window = Window("soft tissue", 400.0, 40.0)
    values = np.array([[-1000.0, -160.0, 40.0, 240.0, 3000.0]])
    assert to_bytes(values, window, inverted=False).tolist() == [[0, 0, 128, 255, 255]]
    assert to_bytes(values, window, inverted=True).tolist() == [[255, 255, 128, 0, 0]]
    rgb = np.full((2, 2, 3), 200.0)
    assert to_bytes(rgb, Window("as stored", None, None), inverted=False).max() == 200


def test_the_worst_frames_windows_show_the_original_and_the_derived_alike(processed: Path) -> None:
    with sqlite3.connect(processed / "catalogue.db") as conn:
        source, derived = conn.execute(
            "SELECT s.uri, d.output_uri FROM derived_instances d JOIN file_locations s "
            "ON s.file_key = d.source_sop_uid WHERE d.tier = 'j2k-r20' ORDER BY d.id LIMIT 1"
        ).fetchone()
    drawn = difference_image(_path(source), _path(derived), 0)
    assert [w.window.name for w in drawn.windows] == ["soft tissue", "lung", "bone"]
    for pair in drawn.windows:
        original = imagecodecs.png_decode(pair.original_png).astype(int)
        copy = imagecodecs.png_decode(pair.derived_png).astype(int)
        assert original.shape == copy.shape == (drawn.rows, drawn.columns)
        assert int(original.max()) - int(original.min()) > 150  # contrast, not a flat grey
        assert np.abs(original - copy).mean() < 3  # a 20:1 copy looks like its original
    soft = imagecodecs.png_decode(drawn.windows[0].original_png)
    lung = imagecodecs.png_decode(drawn.windows[1].original_png)
    assert (soft == 0).mean() > 0.1  # air: black in soft tissue ...
    assert 50 < np.median(lung[soft == 0]) < 70  # ... and dark grey in lung (-1000 HU -> 60)


def _path(uri: str) -> Path:
    path = access.local_path(uri)
    assert path is not None
    return path
