"""The JPEG XL transfer syntaxes of Supplement 232, which pydicom 3.0.2 lacks."""

from __future__ import annotations

from pydicom.uid import UID

from dcmtier.codec import syntaxes


def test_registered_jpeg_xl_syntaxes_are_encapsulated_explicit_vr_little_endian() -> None:
    syntaxes.register()
    syntaxes.register()  # idempotent
    for entry in syntaxes.SYNTAXES:
        uid = UID(entry.uid)
        assert uid.is_transfer_syntax
        assert uid.is_compressed and uid.is_encapsulated
        assert uid.is_little_endian and not uid.is_implicit_VR
        assert uid.name == entry.name
        assert uid.keyword == entry.keyword
    assert [e.uid for e in syntaxes.SYNTAXES] == [
        "1.2.840.10008.1.2.4.110",
        "1.2.840.10008.1.2.4.111",
        "1.2.840.10008.1.2.4.112",
    ]
