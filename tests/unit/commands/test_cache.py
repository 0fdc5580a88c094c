"""``dcmtier cache list`` and ``dcmtier cache prune``."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dcmtier.cli import main
from dcmtier.storage.store import Store
from dcmtier.work.cache import cached_on_store, cached_studies, prune_store
from dcmtier.work.layout import Layout


def _cache(root: Path, study: str, files: int, age: timedelta) -> None:
    folder = Layout(root).layer_cache / study
    folder.mkdir(parents=True)
    stamp = (datetime.now(UTC) - age).timestamp()
    for index in range(files):
        path = folder / f"{index}.j2c"
        path.write_bytes(b"x" * 100)
        os.utime(path, (stamp, stamp))


def test_cache_command_lists_and_prunes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cache(tmp_path, "1.2.3", 2, timedelta(days=30))
    _cache(tmp_path, "1.2.4", 1, timedelta(0))
    assert main(["cache", "list", "--out", str(tmp_path)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("1.2.3  2 files  0.0 MB  last written ")
    assert listed[-1].startswith("cached: 2 studies, 0.0 MB under ")
    assert main(["cache", "prune", "--out", str(tmp_path), "--older-than", "7d"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "deleted 1.2.3  0.0 MB"
    assert [c.study_uid for c in cached_studies(Layout(tmp_path))] == ["1.2.4"]
    with pytest.raises(SystemExit) as usage:
        main(["cache", "prune", "--out", str(tmp_path), "--older-than", "soon"])
    assert usage.value.code == 2
    assert "not a duration" in capsys.readouterr().err


def test_cache_command_lists_and_prunes_the_cache_on_an_object_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "memory://dcmtier-test-cache/out"
    store = Store.open(url)
    for key in ("1.2.3/a.j2c", "1.2.3/b.j2c", "1.2.4/a.j2c"):
        store.write_bytes(f"cache/layered/{key}", b"x" * 100)
    store.write_bytes("packages/1.2.3/j2k-r20.zip", b"zip")
    try:
        assert main(["cache", "list", "--out", url]) == 0
        listed = capsys.readouterr().out.splitlines()
        assert listed[0].startswith("1.2.3  2 files  0.0 MB  last written ")
        assert listed[-1] == f"cached: 2 studies, 0.0 MB under {url}/cache/layered"
        later = datetime.now(UTC) + timedelta(days=8)
        assert prune_store(store, older_than=timedelta(days=7)) == []  # written just now
        dry = prune_store(store, older_than=timedelta(days=7), now=later, dry_run=True)
        assert [c.study_uid for c in dry] == ["1.2.3", "1.2.4"]
        assert main(["cache", "prune", "--out", url]) == 0
        assert capsys.readouterr().out.splitlines()[:2] == [
            "deleted 1.2.3  0.0 MB",
            "deleted 1.2.4  0.0 MB",
        ]
        assert cached_on_store(store) == []
        assert list(store.keys("")) == ["packages/1.2.3/j2k-r20.zip"]  # only the cache goes
    finally:
        store.remove("")
