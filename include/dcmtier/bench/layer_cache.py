"""What each place for the layered cache costs when a tier task runs on another host.

In the DAG the ``encode`` task makes a study's layered J2K codestreams and the study x tier
tasks cut from them. With outputs on object storage they live either on the store
(``DCMTIER_LAYER_CACHE=store``: the encode task uploads them, each tier task downloads them)
or in the encoding worker's scratch only (``worker``: a tier task elsewhere encodes again).
This measures both on a synthetic CT study against the store at ``URL`` (credentials and
endpoint from the store's standard variables, e.g. ``AWS_ENDPOINT_URL``)::

    python -m dcmtier.bench.layer_cache s3://bucket/prefix --slices 10 --size 512

and prints one JSON object: bytes of layered codestreams per slice, and per slice the layered
encode, the upload, the download and the cut (reading the source included in encode and cut).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dcmtier.codec.layering import cut_tiers
from dcmtier.codec.pixels import read_source
from dcmtier.sample import write_ct_series
from dcmtier.storage.store import Store
from dcmtier.tiers import DEFAULT_TIERS, layered_tiers, resolve_tiers
from dcmtier.work.layout import Layout
from dcmtier.work.publish import OutputRoot, Publisher


def measure(url: str, *, slices: int, size: int, folder: Path) -> dict[str, Any]:
    """Encode on one "host", then download and cut on another (another scratch folder)."""
    files = write_ct_series(folder / "landing", slices=slices, rows=size, columns=size, seed=3)
    tiers = layered_tiers(resolve_tiers(list(DEFAULT_TIERS)))
    encoder = _root(url, folder / "host-a")
    started = time.perf_counter()
    for path in files:
        cut_tiers(read_source(path), tiers, encoder.layout.layer_cache)
    encode_s = time.perf_counter() - started
    study = read_source(files[0]).study_uid
    cached = [p for p in (encoder.layout.layer_cache / study).iterdir() if p.is_file()]
    layered_bytes = sum(p.stat().st_size for p in cached)
    started = time.perf_counter()
    uploaded = encoder.keep_layers(study)
    upload_s = time.perf_counter() - started
    other = _root(url, folder / "host-b")
    started = time.perf_counter()
    downloaded = other.fetch_layers(study)
    download_s = time.perf_counter() - started
    started = time.perf_counter()
    for path in files:
        cut_tiers(read_source(path), tiers, other.layout.layer_cache)
    cut_s = time.perf_counter() - started
    other.drop_layers(study, on_store=True)
    encoder.drop_layers(study, on_store=False)
    per_slice = 1000 / slices
    return {
        "slices": slices,
        "size": size,
        "layers": len(tiers),
        "objects": uploaded,
        "downloaded": downloaded,
        "layered_bytes_per_slice": round(layered_bytes / slices),
        "stored_pixel_bytes_per_slice": size * size * 2,
        "encode_ms_per_slice": round(encode_s * per_slice, 1),
        "upload_ms_per_slice": round(upload_s * per_slice, 1),
        "download_ms_per_slice": round(download_s * per_slice, 1),
        "cut_ms_per_slice": round(cut_s * per_slice, 1),
    }


def _root(url: str, scratch: Path) -> OutputRoot:
    """The output root as a worker whose scratch folder is ``scratch`` sees it."""
    store = Store.open(url)
    layout = Layout(scratch)
    return OutputRoot(store.url, layout, Publisher(store, layout), layer_cache="store")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dcmtier.bench.layer_cache")
    parser.add_argument("url", help="an output root on object storage (s3://bucket/prefix)")
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--size", type=int, default=512, help="rows and columns of a slice")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dcmtier-bench-cache-") as folder:
        print(
            json.dumps(measure(args.url, slices=args.slices, size=args.size, folder=Path(folder)))
        )


if __name__ == "__main__":
    main()
