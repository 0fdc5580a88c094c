"""Transfer syntaxes pydicom 3.0.2 does not know yet: the project's own small UID table.

DICOM Supplement 232 (PS3.5 8.2.15 and A.4.11) added the JPEG XL transfer syntaxes; pydicom
names them only on its development branch. pydicom decides whether a transfer syntax is
encapsulated from its UID dictionary: an unknown UID is "not a transfer syntax", so writing
such a file fails and reading one guesses the VR encoding. ``register`` adds the entries
below, after which pydicom treats them like any other encapsulated syntax (explicit VR little
endian, Pixel Data of undefined length in fragments).
"""

from __future__ import annotations

from typing import NamedTuple


class SyntaxEntry(NamedTuple):
    uid: str
    name: str
    keyword: str


JPEG_XL_LOSSLESS = SyntaxEntry("1.2.840.10008.1.2.4.110", "JPEG XL Lossless", "JPEGXLLossless")
JPEG_XL_JPEG_RECOMPRESSION = SyntaxEntry(
    "1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression", "JPEGXLJPEGRecompression"
)
JPEG_XL = SyntaxEntry("1.2.840.10008.1.2.4.112", "JPEG XL", "JPEGXL")
SYNTAXES: tuple[SyntaxEntry, ...] = (JPEG_XL_LOSSLESS, JPEG_XL_JPEG_RECOMPRESSION, JPEG_XL)


_registered = False


def register() -> None:
    """Make pydicom know ``SYNTAXES`` (idempotent; entries pydicom already has are kept)."""
    global _registered  # noqa: PLW0603 - once per process: it runs for every file read
    if _registered:
        return
    from pydicom import uid

    _registered = True
    for entry in SYNTAXES:
        if entry.uid not in uid.UID_dictionary:
            # (name, type, info, retired, keyword), the layout of pydicom's _uid_dict
            uid.UID_dictionary[entry.uid] = (entry.name, "Transfer Syntax", "", "", entry.keyword)
        if entry.uid not in uid.AllTransferSyntaxes:
            uid.AllTransferSyntaxes.append(uid.UID(entry.uid))
