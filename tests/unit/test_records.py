"""The file key: a source file's name in every output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dcmtier.records import file_key, is_valid_uid, name_by_key


@pytest.mark.parametrize(
    ("text", "valid"),
    [("1.2.840.10008.1.2", True), ("0.1", True), ("1.02.3", False), ("1..2", False),
     ("1.2.", False), ("", False), ("a" * 64, False), ("1." + "2" * 62, True),
     ("1." + "2" * 63, False), ("DOE^JANE", False)],
)  # fmt: skip
def test_a_dicom_uid_is_digits_in_components_without_leading_zeros(text: str, valid: bool) -> None:
    assert is_valid_uid(text) is valid


def test_a_file_is_named_by_its_sop_uid_else_by_a_content_hash(tmp_path: Path) -> None:
    path = tmp_path / "DOE_JANE_19700101.dcm"
    path.write_bytes(b"some bytes")
    digest = hashlib.sha256(b"some bytes").hexdigest()[:32]
    assert file_key(path, "1.2.3") == "1.2.3"
    assert file_key(path) == file_key(path, "") == digest
    assert file_key(path, "f" * 64) == digest  # an anonymiser's hex "UID" is not a UID
    missing = tmp_path / "gone.dcm"
    assert file_key(missing) == hashlib.sha256(str(missing).encode()).hexdigest()[:32]


def test_every_spelling_of_a_path_in_a_message_becomes_the_key(tmp_path: Path) -> None:
    path = tmp_path / "DOE JANE" / "a.dcm"
    text = f"{path}: bad; [Errno 2] No such file: '{path}' ({path.as_uri()})"
    assert name_by_key(text, path, "K") == "K: bad; [Errno 2] No such file: 'K' (K)"
