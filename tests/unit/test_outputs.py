"""Names of instances and files, and the mode of what dcmtier writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dcmtier.outputs import file_key, is_dicom_uid, output_mode, uid_name


def test_a_file_key_is_16_hex_digits_of_the_content_never_the_name(tmp_path: Path) -> None:
    a, b = tmp_path / "DOE_JANE.dcm", tmp_path / "other" / "x"
    b.parent.mkdir()
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    assert file_key(a) == file_key(b)
    assert len(file_key(a)) == 16 and int(file_key(a), 16) >= 0
    b.write_bytes(b"other bytes")
    assert file_key(a) != file_key(b)


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


def test_dicom_uids_are_told_from_other_strings() -> None:
    assert is_dicom_uid("1.2.840.10008.1.2.4.90")
    assert not is_dicom_uid("ab" * 32) and not is_dicom_uid("1.02.3")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_the_output_mode_follows_the_umask(umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        assert output_mode() == mode
    finally:
        os.umask(old)
