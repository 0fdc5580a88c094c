"""JPEG XL JPEG Recompression (``…4.111``): a source's JPEG bitstream re-encoded losslessly.

libjxl codes the JPEG's own DCT coefficients and keeps the data needed to rebuild the original
file (the ``jbrd`` box of the JPEG XL container), so decoding gives back the source's JPEG
bytes exactly, and any JPEG decoder then gives the source's pixels. This backend therefore
works on codestreams, not pixels (it ``recompresses``): ``encode`` takes one frame's JPEG
bitstream as stored in the source and ``decode`` returns the rebuilt JPEG bytes, which
verification compares with the source's byte for byte.

libjxl recompresses 8-bit Huffman-coded sequential or progressive JPEG: DICOM's JPEG Baseline
(process 1, ``…4.50``) and 8-bit JPEG Extended (process 2, ``…4.51``). 12-bit process 4 is
refused by the 8-bit limit, every other source syntax by ``check_source``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dcmtier.codec.backends import Backend, Encoded, FrameSpec
from dcmtier.errors import CodecError, PolicyRefused
from dcmtier.tiers import Tier

if TYPE_CHECKING:
    from pydicom import Dataset

MAX_BITS = 8  # libjxl's JPEG reconstruction handles 8-bit JPEG only
JPEG_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": "JPEG Baseline (process 1)",
    "1.2.840.10008.1.2.4.51": "JPEG Extended (process 2 & 4)",
}


def is_available() -> bool:
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(imagecodecs.JPEGXL.available)


def check_source(dataset: Dataset, spec: FrameSpec) -> None:
    """Refuse a source that is not JPEG process 1 or 2 pixel data."""
    syntax = str(dataset.file_meta.get("TransferSyntaxUID", ""))
    if syntax not in JPEG_SYNTAXES:
        raise PolicyRefused(
            f"JPEG XL JPEG recompression takes JPEG Baseline or Extended (8-bit) sources "
            f"({', '.join(JPEG_SYNTAXES)}); this source's transfer syntax is {syntax}",
            rule="codec:jxl-jpeg:jpeg-source-only",
        )


def encode(frame: bytes, spec: FrameSpec, tier: Tier) -> Encoded:
    """Recompress one frame's JPEG bitstream; the output describes the JPEG it rebuilds."""
    import imagecodecs

    try:
        data = bytes(imagecodecs.jpegxl_encode_jpeg(frame, usecontainer=True, numthreads=1))
    except Exception as exc:
        raise CodecError(f"libjxl could not recompress the JPEG bitstream: {exc}") from exc
    return Encoded(data, spec.photometric, spec.bits_stored, params={"jpeg_bytes": len(frame)})


def decode(data: bytes, spec: FrameSpec | None = None) -> np.ndarray:
    """The JPEG bitstream the frame rebuilds, as bytes (uint8); ``spec`` is not needed."""
    import imagecodecs

    try:
        jpeg = imagecodecs.jpegxl_decode_jpeg(data, numthreads=1)
    except Exception as exc:
        raise CodecError(f"libjxl could not rebuild the JPEG bitstream: {exc}") from exc
    return np.frombuffer(bytes(jpeg), dtype=np.uint8)


BACKEND = Backend(
    "jxl-jpeg", is_available, encode, decode, max_bits=MAX_BITS, recompresses=True,
    check_source=check_source,
)  # fmt: skip
