"""The viewers checked, and which codec each decodes each transfer syntax with.

A viewer is a release of Cornerstone3D's ``@cornerstonejs/dicom-image-loader``: OHIF pins
5.6.8; 5.14.0 is the newest release and the first to decode JPEG XL. The tables are the
compressed transfer syntaxes of ``decodeImageFrame`` in each release's
``decodeImageFrameWorker.js`` that reach a WASM codec (baseline JPEG, JPEG Lossless and RLE go
to JavaScript decoders and dcmtier writes none of them). Each codec runs at the version that
release's ``package.json`` pins; ``node/package.json`` installs those versions under npm aliases.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

OPENJPEG, OPENJPH, CHARLS, LIBJXL = "openjpeg", "openjph", "charls", "libjxl"

_JPEG_LS = {"1.2.840.10008.1.2.4.80": CHARLS, "1.2.840.10008.1.2.4.81": CHARLS}
_JPEG_2000 = {"1.2.840.10008.1.2.4.90": OPENJPEG, "1.2.840.10008.1.2.4.91": OPENJPEG}
# HTJ2K: the three DICOM syntaxes and the private 3.2... one an early draft used
_HTJ2K = {
    uid: OPENJPH
    for uid in (
        "3.2.840.10008.1.2.4.96",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    )
}
# JPEG XL Lossless, JPEG XL JPEG Recompression, JPEG XL (5.14.0 on)
_JPEG_XL = {f"1.2.840.10008.1.2.4.{n}": LIBJXL for n in (110, 111, 112)}

VIEWERS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "cornerstone-5.6.8": MappingProxyType({**_JPEG_LS, **_JPEG_2000, **_HTJ2K}),
        "cornerstone-5.14.0": MappingProxyType({**_JPEG_LS, **_JPEG_2000, **_HTJ2K, **_JPEG_XL}),
    }
)


def codec_for(viewer: str, transfer_syntax: str) -> str | None:
    """The codec ``viewer`` decodes ``transfer_syntax`` with; None when it has no decoder for
    it (the loader throws "no decoder for transfer syntax")."""
    return VIEWERS[viewer].get(transfer_syntax)
