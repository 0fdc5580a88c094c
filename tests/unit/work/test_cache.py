"""The layered cache: listed, dropped per study, pruned by age; a pruned cache re-encodes."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dcmtier.codec.layering import Cut, cut_tiers
from dcmtier.codec.pixels import read_source
from dcmtier.sample import write_ct_series
from dcmtier.tiers import resolve_tiers
from dcmtier.work.cache import cached_studies, drop_study, prune
from dcmtier.work.layout import Layout

RATE_TIERS = resolve_tiers(["j2k-r10", "j2k-r20"])
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _cache(root: Path, study: str, files: int, age: timedelta) -> Path:
    folder = Layout(root).layer_cache / study
    folder.mkdir(parents=True)
    stamp = (NOW - age).timestamp()
    for index in range(files):
        path = folder / f"{index}.j2c"
        path.write_bytes(b"x" * 100)
        os.utime(path, (stamp, stamp))
    return folder


def test_prune_deletes_only_what_was_not_written_for_the_given_age(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    old = _cache(tmp_path, "1.2.3", 3, timedelta(days=8))
    fresh = _cache(tmp_path, "1.2.4", 2, timedelta(hours=1))
    listed = {c.study_uid: (c.files, c.bytes) for c in cached_studies(layout)}
    assert listed == {"1.2.3": (3, 300), "1.2.4": (2, 200)}
    would = prune(layout, older_than=timedelta(days=7), now=NOW, dry_run=True)
    assert [c.study_uid for c in would] == ["1.2.3"] and old.is_dir()
    pruned = prune(layout, older_than=timedelta(days=7), now=NOW)
    assert [c.study_uid for c in pruned] == ["1.2.3"]
    assert not old.exists() and fresh.is_dir()
    assert [c.study_uid for c in prune(layout)] == ["1.2.4"] and not fresh.exists()
    assert prune(layout) == [] and cached_studies(Layout(tmp_path / "none")) == []


def test_drop_study_removes_one_study_and_says_what_it_held(tmp_path: Path) -> None:
    _cache(tmp_path, "1.2.3", 2, timedelta(0))
    keep = _cache(tmp_path, "1.2.4", 1, timedelta(0))
    dropped = drop_study(Layout(tmp_path), "1.2.3")
    assert dropped is not None and (dropped.files, dropped.bytes) == (2, 200)
    assert drop_study(Layout(tmp_path), "1.2.3") is None
    assert keep.is_dir()


def test_a_pruned_cache_is_encoded_again_not_an_error(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path / "landing", slices=1, rows=64, columns=64)
    layout = Layout(tmp_path / "out")

    def encodes(cuts: dict[str, Cut]) -> int:
        return sum(e.encodes for cut in cuts.values() for e in cut.frames)

    first = cut_tiers(read_source(path), RATE_TIERS, layout.layer_cache)
    assert encodes(first) >= 1 and len(list(layout.layer_cache.rglob("*.j2c"))) == 1
    assert encodes(cut_tiers(read_source(path), RATE_TIERS, layout.layer_cache)) == 0  # cached
    assert len(prune(layout)) == 1 and not list(layout.layer_cache.iterdir())
    redone = cut_tiers(read_source(path), RATE_TIERS, layout.layer_cache)
    assert encodes(redone) >= 1
    assert [e.data for e in redone["j2k-r20"].frames] == [e.data for e in first["j2k-r20"].frames]
    assert len(list(layout.layer_cache.rglob("*.j2c"))) == 1  # and cached again
