"""``dcmtier cache list`` and ``dcmtier cache prune``."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dcmtier.cli import main
from dcmtier.work.cache import cached_studies
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
