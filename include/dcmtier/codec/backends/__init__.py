"""Codec registry in pydicom's manner: a label maps to a lazily imported `Backend`.

Each backend module defines ``BACKEND``, a `Backend`: ``is_available() -> bool``, a typed
``encode(frame, spec, tier) -> Encoded`` and ``decode(data, spec) -> numpy.ndarray`` over one
frame of stored values, and the limits `Backend.check` applies to a source before any encode
(what the codec, as dcmtier drives it, cannot take is refused, never attempted).

A backend that ``recompresses`` (``jxl-jpeg``) re-encodes the source's own codestream
instead: ``encode`` takes one frame's codestream bytes and ``decode`` gives them back, and its
``check_source(dataset, spec)`` raises ``PolicyRefused`` for a source it cannot take.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dcmtier.errors import CodecError, ConfigError, PolicyRefused

if TYPE_CHECKING:
    import numpy as np
    from pydicom import Dataset

    from dcmtier.tiers import Tier

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


# frame: stored values (numpy.ndarray), or one frame's codestream for a recompressing backend
EncodeFunction = Callable[[Any, FrameSpec, "Tier"], Encoded]
DecodeFunction = Callable[[bytes, FrameSpec], "np.ndarray"]
SourceCheck = Callable[["Dataset", FrameSpec], None]


@dataclass(frozen=True)
class Backend:
    """One codec as dcmtier drives it: how to encode and decode a frame, and what it takes."""

    label: str  # the registry key, ``Tier.codec.label``
    is_available: Callable[[], bool]
    encode: EncodeFunction
    decode: DecodeFunction
    max_bits: int = 16  # the most Bits Stored it codes
    min_side: int = 1  # the fewest pixels a side it codes losslessly
    min_lossy_side: int = 1  # ... and lossily
    one_bit: bool = False  # whether it codes 1-bit (BitsAllocated 1) pixel data
    recompresses: bool = False  # works on the source's codestreams, not its stored values
    check_source: SourceCheck | None = None  # the backend's own refusals, after the limits
    check_lossy: SourceCheck | None = None  # ... and those of its lossy modes only

    def check(self, dataset: Dataset, spec: FrameSpec, tier: Tier) -> None:
        """Raise ``CodecError`` when the codec is not installed, ``PolicyRefused`` when it
        cannot code this source at ``tier`` (too many bits, 1-bit, too small a side, or the
        backend's own ``check_source``, and ``check_lossy`` for a lossy tier)."""
        if not self.is_available():
            raise CodecError(f"codec {self.label} is not installed")
        if self.check_source is not None:
            self.check_source(dataset, spec)
        if self.check_lossy is not None and not tier.lossless:
            self.check_lossy(dataset, spec)
        if spec.bits_stored > self.max_bits:
            raise PolicyRefused(
                f"{tier.codec.description} here codes at most {self.max_bits} bits stored",
                rule=f"codec:{self.label}:max-bits",
            )
        if spec.bits_allocated == 1 and not self.one_bit:
            raise PolicyRefused(
                f"1-bit pixel data is coded with JPEG 2000 only, not {tier.codec.description}",
                rule=f"codec:{self.label}:1-bit",
            )
        min_side = self.min_side if tier.lossless else self.min_lossy_side
        if min(spec.rows, spec.columns) < min_side:
            mode = "lossless" if tier.lossless else "lossy"
            raise PolicyRefused(
                f"{tier.codec.description} {mode} here needs at least {min_side} pixels a side",
                rule=f"codec:{self.label}:min-size",
            )


def backend(label: str) -> Backend:
    """Import and return the backend for ``label``; unknown labels list the known ones."""
    try:
        module_name = _BACKENDS[label]
    except KeyError:
        raise ConfigError(
            f"unknown codec {label!r}; known codecs: {', '.join(_BACKENDS)}"
        ) from None
    found = importlib.import_module(module_name).BACKEND
    if not isinstance(found, Backend):  # a module's attribute is not typed: say so at once
        raise ConfigError(f"{module_name}.BACKEND is not a Backend")
    return found


def available() -> dict[str, bool]:
    """Which codecs can be used in this environment."""
    return {label: bool(backend(label).is_available()) for label in _BACKENDS}
