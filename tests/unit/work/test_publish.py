"""Publishing a study x tier from scratch to a store (fsspec's in-memory filesystem here; S3 in
tests/unit/commands/test_process_s3.py and tests/faults/test_object_store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcmtier.discovery.files import discover
from dcmtier.sample import write_ct_series
from dcmtier.storage.store import Store
from dcmtier.tiers import resolve_tiers
from dcmtier.work.publish import OutputRoot, Publisher
from dcmtier.work.study import process_study


def test_a_published_tier_is_on_the_store_under_final_keys_and_gone_from_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DCMTIER_SCRATCH", str(tmp_path / "scratch"))
    write_ct_series(tmp_path / "in", slices=2, rows=64, columns=64, seed=5)
    (study,), _ = discover([tmp_path / "in"])
    root = OutputRoot.of("memory://dcmtier-test-publish/out")
    assert isinstance(root.publisher, Publisher)
    (result,) = process_study(
        study, resolve_tiers(["j2k-lossless"]), root.layout, run_id="t",
        publisher=root.publisher,
    )  # fmt: skip
    store = Store.open("memory://dcmtier-test-publish/out")
    keys = store.keys("")
    assert sorted(k.split("/")[0] for k in keys) == ["derived", "derived", "packages", "quality"]
    assert result.package == store.url_of(f"packages/{study.uid}/j2k-lossless.zip")
    assert all(str(r.output).startswith("memory://") for r in result.results)
    assert not list((root.layout.root / "derived").rglob("*.dcm"))
    assert not (root.layout.root / "packages" / study.uid / "j2k-lossless.zip").exists()
    store.remove("")


def test_an_output_on_a_store_without_a_catalogue_url_is_refused(tmp_path: Path) -> None:
    root = OutputRoot.of("memory://dcmtier-test-refuse/out")
    with pytest.raises(Exception, match="needs a catalogue URL"):
        root.data_dir(None)
    assert OutputRoot.of(tmp_path).data_dir(None) == tmp_path
