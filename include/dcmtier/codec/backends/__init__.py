"""Codec registry in pydicom's manner: a label maps to a lazily imported backend.

Every backend module exposes ``is_available() -> bool``, ``encode(frame, spec, tier) -> Encoded``
and ``decode(data, spec) -> numpy.ndarray`` over one frame of stored values.

A backend with ``RECOMPRESSES = True`` (``jxl-jpeg``) re-encodes the source's own codestream
instead: ``encode`` takes one frame's codestream bytes and ``decode`` gives them back, and its
``check_source(transfer_syntax, spec)`` raises ``PolicyRefused`` for a source it cannot take.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING

from dcmtier.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

_BACKENDS: dict[str, str] = {
    "j2k": "dcmtier.codec.backends.openjpeg",
    "htj2k": "dcmtier.codec.backends.htj2k",
    "jls": "dcmtier.codec.backends.jpegls",
    "jxl": "dcmtier.codec.backends.jpegxl",
    "jxl-jpeg": "dcmtier.codec.backends.jpegxl_jpeg",
}


@dataclass(frozen=True)
class FrameSpec:
    """Layout of one frame of stored values, as the codestream must describe it."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str  # of the values handed to the encoder (colour is RGB after decoding)

    @property
    def pixel_bytes(self) -> int:
        """Uncompressed stored bytes of one frame (BitsAllocated, not BitsStored)."""
        return self.rows * self.columns * self.samples * self.bits_allocated // 8 or 1

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one decoded frame: rows x columns, with a samples axis for colour."""
        return (self.rows, self.columns) if self.samples == 1 else (self.rows, self.columns, 3)

    @property
    def dtype(self) -> np.dtype[np.generic]:
        import numpy as np

        size = 1 if self.bits_allocated <= 8 else 2
        return np.dtype(f"{'i' if self.signed else 'u'}{size}")


@dataclass(frozen=True)
class Encoded:
    """One encoded frame and what the DICOM attributes must say about it."""

    data: bytes
    photometric: str  # YBR_RCT / YBR_ICT when a colour transform was applied
    bits_stored: int  # precision written in the codestream
    encodes: int = 1  # how many encoder calls rate control needed
    params: Mapping[str, object] = field(default_factory=dict)
    # Added to every stored value before coding, for codecs that code unsigned samples only
    # (JPEG XL): the output is unsigned and its Rescale Intercept compensates (derive.py).
    offset: int = 0


def backend(label: str) -> ModuleType:
    """Import and return the backend for ``label``; unknown labels list the known ones."""
    try:
        module_name = _BACKENDS[label]
    except KeyError:
        raise ConfigError(
            f"unknown codec {label!r}; known codecs: {', '.join(_BACKENDS)}"
        ) from None
    return importlib.import_module(module_name)


def available() -> dict[str, bool]:
    """Which codecs can be used in this environment."""
    return {label: bool(backend(label).is_available()) for label in _BACKENDS}
