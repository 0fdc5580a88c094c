"""Owners: a process is known by host, pid and start; temp files carry their writer's name,
and only a dead writer's are removed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcmtier import owner
from dcmtier.errors import ConfigError
from tests.support import dead_owner_token, live_owner_token


def test_this_process_is_alive_and_an_ended_one_is_gone() -> None:
    me = owner.current()
    assert me.pid == os.getpid() and me.start > 0
    assert me.is_gone() is False
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert owner.Owner(me.host, child.pid, me.start).is_gone() is True


def test_a_reused_pid_with_another_start_time_is_not_the_owner() -> None:
    me = owner.current()
    assert owner.Owner(me.host, me.pid, me.start + 1).is_gone() is True


def test_an_owner_on_another_host_cannot_be_judged_by_its_pid() -> None:
    assert owner.Owner("elsewhere", os.getpid(), 1).is_gone() is None


def test_a_temporary_file_names_its_writer(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "1.2.3.dcm"
    tmp = owner.temp_file(target)
    assert tmp.parent == target.parent and tmp.name.startswith(".1.2.3.dcm~")
    assert owner.temp_owner(tmp) == owner.current()
    folder = owner.temp_file(target, directory=True)
    assert folder.is_dir() and owner.temp_owner(folder) == owner.current()


def test_only_temporary_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f".a.zip{dead_owner_token()}x1.tmp"
    live = tmp_path / f".a.zip{live_owner_token()}x2.tmp"
    mine = owner.temp_file(tmp_path / "a.zip")
    foreign = tmp_path / ".a.zip~elsewhere~12~34~x3.tmp"
    legacy = tmp_path / ".a.zip.k1ll3d.tmp"
    kept_file = tmp_path / "a.zip"
    for path in (dead, live, foreign, legacy, kept_file):
        path.write_bytes(b"x")

    assert owner.remove_dead_temps(tmp_path) == [dead]

    old = time.time() - owner.lease_seconds() - 5
    for path in (foreign, legacy):
        os.utime(path, (old, old))
    assert sorted(owner.remove_dead_temps(tmp_path)) == sorted([foreign, legacy])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, mine.name, kept_file.name]
    )


def test_dead_temporary_folders_are_found_below_when_asked(tmp_path: Path) -> None:
    deep = tmp_path / "series" / f".x.dcm{dead_owner_token()}zz.tmp"
    deep.parent.mkdir()
    deep.mkdir()
    assert owner.remove_dead_temps(tmp_path) == []
    assert owner.remove_dead_temps(tmp_path, recursive=True) == [deep]
    assert not deep.exists()


@pytest.mark.parametrize("value", ["soon", "2"], ids=["not a number", "too short"])
def test_a_bad_lease_setting_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(owner.LEASE_ENV, value)
    with pytest.raises(ConfigError, match=owner.LEASE_ENV):
        owner.lease_seconds()


def test_a_checkpoint_does_nothing_unless_a_test_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marker = tmp_path / "paused"
    monkeypatch.setenv(owner.PAUSE_ENV, f"elsewhere:{marker}")
    owner.checkpoint("compress")
    assert not marker.exists()


def test_replacing_moves_the_written_file_over_its_target_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    target = tmp_path / "new" / "folder" / "out.bin"  # its folder is made on the way
    with owner.replacing(target) as temp:
        temp.file.write(b"first")
        assert temp.path.parent == target.parent and temp.path.name.endswith(".tmp")
        assert not target.exists()  # nothing under the name until the block ends
    with owner.replacing(target) as temp:
        temp.file.write(b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_replacing_keeps_the_old_file_and_removes_the_temporary_on_an_error(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="check failed"), owner.replacing(target) as temp:
        temp.file.write(b"half")
        temp.file.close()
        raise ValueError("check failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
