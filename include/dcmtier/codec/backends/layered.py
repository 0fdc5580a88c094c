"""One JPEG 2000 encode for every rate tier: quality layers, then truncated codestreams.

OpenJPEG orders packets layer by layer (LRCP, one tile), so the first k layers of a layered
codestream are a prefix of its packet data. The layered encode carries PLT markers, which give
every packet's length; the codestream for rate k is the main header with the layer count in COD
set to k, a tile-part header with Psot rewritten, the kept packets, and EOC. Each truncation is
a standalone, valid codestream. The cuts carry no PLT (like single-rate encodes): at r1000 a
512x512 codestream is ~520 bytes, and the PLT of its 6 packets would add ~3 % to it.

Layer i's cumulative size is OpenJPEG's rate target for that layer (relative to Bits Stored,
like a single-rate encode), so the nominal ratios are converted from dcmtier's pixel ratios.
A layer more than the rate tolerance over its budget (the rule single-rate encodes follow) is
corrected by one more encode of all layers at once, at most ``MAX_CORRECTIONS`` times.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dcmtier.codec.backends import FrameSpec
from dcmtier.codec.backends.ratecontrol import within
from dcmtier.errors import CodecError

SOC, SIZ, COD, SOT, PLT, SOD, EOC = 0xFF4F, 0xFF51, 0xFF52, 0xFF90, 0xFF58, 0xFF93, 0xFFD9
MAX_CORRECTIONS = 1
_GREYSCALE, _SRGB = 2, 1


@dataclass(frozen=True)
class Layers:
    """A layered codestream and where its parts are, ready to be cut at any layer."""

    data: bytes
    targets: tuple[float, ...]  # pixel ratio of each layer, most compressed first
    main_header: bytes  # SOC up to (not including) SOT
    cod_offset: int  # offset of COD's marker within main_header
    tile_markers: bytes  # tile-part header segments other than SOT and PLT
    packet_lengths: tuple[int, ...]
    packets_per_layer: int
    encodes: int = 1

    @property
    def count(self) -> int:
        return len(self.targets)

    def cut(self, layers: int, packets: int | None = None) -> bytes:
        """The standalone codestream holding the first ``layers`` quality layers.

        With ``packets``, only that many packets of the last layer are kept (in codestream
        order: lowest resolution first) and its others are empty packets (one 0x00 byte each:
        a packet header whose first bit says "empty", PS 15444-1 B.10.3), which refines the
        rate between two layers without another encode. The kept packets are unchanged: a
        packet header depends only on the earlier packets of its precinct.
        """
        per_layer = self.packets_per_layer
        packets = per_layer if packets is None else packets
        if not 1 <= layers <= self.count or not 0 <= packets <= per_layer:
            raise CodecError(
                f"a codestream of {self.count} layers of {per_layer} packets cannot be cut at "
                f"layer {layers}, packet {packets}"
            )
        kept = self.packet_lengths[: (layers - 1) * per_layer + packets]
        header = bytearray(self.main_header)
        struct.pack_into(">H", header, self.cod_offset + 6, layers)  # SGcod: number of layers
        tile = self.tile_markers
        body_start = len(self.data) - 2 - sum(self.packet_lengths)  # packets end before EOC
        body = self.data[body_start : body_start + sum(kept)] + bytes(per_layer - packets)
        psot = 12 + len(tile) + 2 + len(body)
        sot = struct.pack(">HHHIBB", SOT, 10, 0, psot, 0, 1)
        return bytes(header) + sot + tile + struct.pack(">H", SOD) + body + struct.pack(">H", EOC)

    def sizes(self) -> list[int]:
        """Byte size of each cut, without building it."""
        fixed = len(self.main_header) + 12 + len(self.tile_markers) + 2 + 2
        ends = itertools.accumulate(self.packet_lengths)
        per_layer = list(itertools.islice(ends, self.packets_per_layer - 1, None,
                                          self.packets_per_layer))  # fmt: skip
        return [fixed + size for size in per_layer]


def encode_layers(
    frame: np.ndarray, spec: FrameSpec, targets: Sequence[float], *, correct: bool = True
) -> Layers:
    """Encode ``frame`` once with one irreversible quality layer per target pixel ratio.

    ``targets`` must be strictly decreasing (most compressed first). Each layer is corrected
    towards its target by re-encoding all layers together, at most ``MAX_CORRECTIONS`` times,
    unless ``correct`` is false (a ladder searched for quality needs no exact rates).
    """
    goals = tuple(float(t) for t in targets)
    if any(b >= a for a, b in itertools.pairwise(goals)) or not goals:
        raise CodecError(f"layer targets must be strictly decreasing, got {goals}")
    nominal = [max(1.0, t * spec.bits_stored / spec.bits_allocated) for t in goals]
    layers = _encode(frame, spec, nominal, goals)
    for _ in range(MAX_CORRECTIONS if correct else 0):
        achieved = [spec.pixel_bytes / size for size in layers.sizes()]
        if not _needs_correction(achieved, goals):
            break
        nominal = _corrected(nominal, achieved, goals)
        retry = _encode(frame, spec, nominal, goals, encodes=layers.encodes + 1)
        if _misses(retry, spec) >= _misses(layers, spec):  # no better: keep the first
            layers = _with_encodes(layers, retry.encodes)
            break
        layers = retry
    return layers


def _needs_correction(achieved: Sequence[float], goals: Sequence[float]) -> bool:
    """Whether a layer misses its target by more than the rate tolerance in a fixable way.

    A layer over its budget is always fixable. A layer under its budget is fixable only below
    the last layer, which proves more data exists; the last layer under budget means the
    image compresses beyond the target (as a single-rate encode would find too).
    """
    last = len(goals) - 1
    return any(
        not within(ratio, target) and (ratio < target or index < last)
        for index, (ratio, target) in enumerate(zip(achieved, goals, strict=True))
    )


def _corrected(
    nominal: list[float], achieved: list[float], goals: tuple[float, ...]
) -> list[float]:
    """Scale each layer's nominal ratio by target / achieved, keeping the order strict."""
    out: list[float] = []
    for n, a, t in zip(nominal, achieved, goals, strict=True):
        value = max(1.0, n * t / a)
        if out and value >= out[-1]:
            value = out[-1] * 0.999
        out.append(value)
    return out


def _misses(layers: Layers, spec: FrameSpec) -> tuple[int, float]:
    """Layers outside the rate tolerance, then the summed log error: less is better."""
    achieved = [spec.pixel_bytes / size for size in layers.sizes()]
    outside = sum(not within(a, t) for a, t in zip(achieved, layers.targets, strict=True))
    return outside, _error(layers, spec)


def _error(layers: Layers, spec: FrameSpec) -> float:
    return sum(
        abs(math.log(spec.pixel_bytes / size / t))
        for size, t in zip(layers.sizes(), layers.targets, strict=True)
    )


def _with_encodes(layers: Layers, encodes: int) -> Layers:
    return Layers(
        layers.data, layers.targets, layers.main_header, layers.cod_offset, layers.tile_markers,
        layers.packet_lengths, layers.packets_per_layer, encodes,
    )  # fmt: skip


def _encode(
    frame: np.ndarray,
    spec: FrameSpec,
    nominal: Sequence[float],
    goals: tuple[float, ...],
    *,
    encodes: int = 1,
) -> Layers:
    import openjpeg

    colour = spec.samples == 3
    try:
        data = bytes(
            openjpeg.encode(
                frame,
                bits_stored=spec.bits_stored,
                photometric_interpretation=_SRGB if colour else _GREYSCALE,
                use_mct=colour,
                compression_ratios=list(nominal),
                add_plt=True,
            )
        )
    except Exception as exc:
        raise CodecError(f"OpenJPEG could not encode the layered frame: {exc}") from exc
    return parse(data, goals, encodes=encodes)


def parse(data: bytes, targets: tuple[float, ...], *, encodes: int = 1) -> Layers:
    """Locate the main header, COD, the tile-part markers and the packet lengths."""
    if data[:2] != struct.pack(">H", SOC):
        raise CodecError("not a JPEG 2000 codestream (no SOC marker)")
    pos, cod_offset = 2, -1
    tile_markers, lengths = b"", []
    main_end = -1
    while pos + 4 <= len(data):
        marker, length = struct.unpack_from(">HH", data, pos)
        if marker == SOD:
            break
        if marker == COD:
            cod_offset = pos
        if marker == SOT:
            main_end = pos
            tiles = struct.unpack_from(">BB", data, pos + 10)
            if tiles != (0, 1):
                raise CodecError("layered truncation needs a single tile-part")
        elif marker == PLT:
            lengths += _read_plt(data[pos + 5 : pos + 2 + length])
        elif main_end >= 0:
            tile_markers += data[pos : pos + 2 + length]
        pos += 2 + length
    if main_end < 0 or cod_offset < 0 or not lengths:
        raise CodecError("layered codestream lacks SOT, COD or PLT markers")
    layer_count = struct.unpack_from(">H", data, cod_offset + 6)[0]
    if layer_count != len(targets) or len(lengths) % layer_count:
        raise CodecError(f"{len(lengths)} packets do not split into {len(targets)} layers")
    if pos + 2 + sum(lengths) + 2 != len(data):
        raise CodecError("PLT packet lengths do not add up to the tile data")
    return Layers(
        data, targets, data[:main_end], cod_offset, tile_markers, tuple(lengths),
        len(lengths) // layer_count, encodes,
    )  # fmt: skip


def _read_plt(body: bytes) -> list[int]:
    """Packet lengths of one PLT segment (7 bits a byte, high bit: more bytes follow)."""
    values, value = [], 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            values.append(value)
            value = 0
    return values
