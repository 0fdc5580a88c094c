"""Names of written folders and files, and the mode of what dcmtier writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dcmtier.outputs import output_mode, uid_name


@pytest.mark.parametrize(
    ("uid", "kept"),
    [("1.2.840.10008.5.1", True), ("ab" * 32, True), ("../../etc", False), ("a/b", False),
     ("1." + "2" * 70, False), ("..", False), ("with space", False)],
    ids=["dicom", "hex64", "dotdot", "slash", "long", "parent", "space"],
)  # fmt: skip
def test_a_uid_names_a_file_as_it_is_only_when_it_is_safe(uid: str, kept: bool) -> None:
    name = uid_name(uid)
    assert (name == uid) is kept
    assert "/" not in name and name not in (".", "..") and len(name) <= 64


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_the_output_mode_follows_the_umask(umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        assert output_mode() == mode
    finally:
        os.umask(old)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o755), (0o027, 0o750)])
def test_temporary_files_and_folders_get_the_mode_the_umask_gives(
    tmp_path: Path, umask: int, mode: int
) -> None:
    from dcmtier import owner

    old = os.umask(umask)
    try:
        made = owner.temp_file(tmp_path / "out.zip")
        folder = owner.temp_file(tmp_path / "part", directory=True)
    finally:
        os.umask(old)
    assert made.stat().st_mode & 0o777 == mode & 0o666  # tempfile alone gives 0600
    assert folder.stat().st_mode & 0o777 == mode  # and 0700
