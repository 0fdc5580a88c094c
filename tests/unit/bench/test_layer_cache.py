"""The layered-cache measurement (``dcmtier.bench.layer_cache``) on fsspec's in-memory store."""

from __future__ import annotations

from pathlib import Path

from dcmtier.bench.layer_cache import measure
from dcmtier.storage.store import Store


def test_one_host_uploads_the_layers_another_downloads_and_cuts_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    url = "memory://dcmtier-test-bench/out"
    found = measure(url, slices=2, size=64, folder=tmp_path)
    assert found["objects"] == found["downloaded"] == 2  # one codestream per slice
    assert found["layers"] == 12
    assert 0 < found["layered_bytes_per_slice"] < found["stored_pixel_bytes_per_slice"]
    assert found["cut_ms_per_slice"] < found["encode_ms_per_slice"]
    assert Store.open(url).keys("") == {}
