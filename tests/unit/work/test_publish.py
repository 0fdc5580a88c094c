"""Publishing a study x tier from scratch to a store (fsspec's in-memory filesystem here; S3 in
tests/unit/commands/test_process_s3.py and tests/faults/test_object_store.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dcmtier.discovery.files import discover
from dcmtier.sample import write_ct_series
from dcmtier.storage.store import Store
from dcmtier.tiers import resolve_tiers
from dcmtier.work.config import RunConfig
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
    run = RunConfig(root.layout, "t", publisher=root.publisher)
    (result,) = process_study(study, resolve_tiers(["j2k-lossless"]), run)
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


def test_one_file_processed_again_into_a_study_on_the_store_keeps_every_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``work.carry`` on a store: the earlier package and partition are fetched into scratch,
    the members not processed now are carried over, and nothing of them is pruned."""
    import io
    import json
    import zipfile

    import pyarrow.parquet as pq

    from dcmtier.catalogue import Catalogue
    from dcmtier.records import Study

    monkeypatch.setenv("DCMTIER_SCRATCH", str(tmp_path / "scratch"))
    write_ct_series(tmp_path / "in", slices=4, rows=64, columns=64, seed=6)
    (study,), _ = discover([tmp_path / "in"])
    url = f"sqlite:///{tmp_path / 'catalogue.db'}"
    Catalogue.upgrade(url)
    catalogue = Catalogue.connect(url)
    root = OutputRoot.of("memory://dcmtier-test-carry/out")
    tiers = resolve_tiers(["j2k-lossless"])
    run = RunConfig(root.layout, "all", catalogue=catalogue, publisher=root.publisher)
    process_study(study, tiers, run)
    one = study.files[2]
    one_study = Study(study.uid, (one,), {one: study.sop_uids[one]})
    (again,) = process_study(one_study, tiers, dataclasses.replace(run, run_id="one"))
    assert again.counts == {"carried": 3, "ok": 1}
    store = Store.open("memory://dcmtier-test-carry/out")
    keys = store.keys("")
    assert len([k for k in keys if k.startswith(f"derived/j2k-lossless/{study.uid}/")]) == 4
    package = store.read_bytes(f"packages/{study.uid}/j2k-lossless.zip")
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        assert len(json.loads(zf.read("manifest.json"))["members"]) == 4
    (part,) = [k for k in keys if k.startswith("quality/")]
    assert pq.read_table(io.BytesIO(store.read_bytes(part))).num_rows == 4
    assert not [k for k in keys if k.startswith("work/publish/")]
    store.remove("")


def test_a_package_a_failed_attempt_left_in_scratch_is_not_carried_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DCMTIER_SCRATCH", str(tmp_path / "scratch"))
    root = OutputRoot.of("memory://dcmtier-test-stale/out")
    assert root.publisher is not None
    left = root.layout.package("1.2.3", "j2k-r20")  # never published: the store has none
    left.parent.mkdir(parents=True)
    left.write_bytes(b"PK not committed")
    root.publisher.fetch_known("1.2.3", ["j2k-r20"])
    assert not left.exists()
