"""The shared records: the file key (a source file's name in every output) and the outcome
words of a study x tier."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dcmtier.records import file_key, is_valid_uid, name_by_key, outcome_text


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


@pytest.mark.parametrize(
    ("status", "counts", "instances", "text"),
    [
        ("ok", {"ok": 10}, 10, "ok 10/10"),
        ("partial", {"ok": 7, "failed": 3}, 10, "partial 7/10 · 3 failed"),
        ("partial", {"ok": 7, "gate_failed": 3}, 10, "partial 7/10 · 3 below gate"),
        ("ok", {"ok": 9, "refused": 1, "skipped": 2}, 12, "ok 9/10 · 1 refused"),
        ("failed", {"failed": 2}, 2, "failed 0/2 · 2 failed"),
        ("ok", {"ok": 1, "carried": 11}, 12, "ok 12/12"),
        ("ok", {"ok": 11, "duplicate": 1}, 12, "ok 11/11 · 1 duplicate"),
    ],
    ids=[
        "clean",
        "partial",
        "below-gate",
        "refused-and-skipped",
        "failed",
        "carried",
        "duplicate",
    ],
)
def test_the_outcome_says_how_many_were_packaged_and_why_not_the_rest(
    status: str, counts: dict[str, int], instances: int, text: str
) -> None:
    assert outcome_text(status, counts, instances) == text
