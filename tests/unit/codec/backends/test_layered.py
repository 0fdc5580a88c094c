"""One layered encode, cut into every J2K rate: valid standalone codestreams near per-tier ones."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import openjpeg
import pytest

from dcmtier.codec.backends import FrameSpec
from dcmtier.codec.backends import openjpeg as single
from dcmtier.codec.backends.layered import Layers, encode_layers, parse
from dcmtier.codec.backends.ratecontrol import within
from dcmtier.errors import CodecError
from dcmtier.measure.metrics import ModalityLUT, frame_metrics
from dcmtier.sample import ct_phantom
from dcmtier.tiers import J2K_RATES, TIERS
from tests.support import require_tool

RATES = tuple(sorted(J2K_RATES, reverse=True))  # most compressed first
SPEC = FrameSpec(512, 512, 1, 16, 12, True, "MONOCHROME2")
LUT = ModalityLUT(bits_stored=12, unit="HU")


@pytest.fixture(scope="module", params=[0.3, 0.7], ids=["chest", "abdomen"])
def layered(request: pytest.FixtureRequest) -> tuple[np.ndarray, Layers]:
    frame = ct_phantom(512, 512, z=request.param, seed=5)
    return frame, encode_layers(frame, SPEC, RATES)


@pytest.mark.parametrize("layer", range(1, len(RATES) + 1), ids=[f"r{r}" for r in RATES])
def test_each_cut_is_a_valid_codestream_near_the_single_rate_encode(
    layered: tuple[np.ndarray, Layers], layer: int, tmp_path: Path
) -> None:
    frame, layers = layered
    rate = RATES[layer - 1]
    cut = layers.cut(layer)
    assert len(cut) == layers.sizes()[layer - 1]
    ours = openjpeg.decode(cut).astype(np.int16)
    # an independent decoder reads the same image
    path = tmp_path / "cut.j2k"
    path.write_bytes(cut)
    subprocess.run([require_tool("opj_decompress"), "-i", str(path), "-o", f"{path}.rawl"],
                   check=True, capture_output=True)  # fmt: skip
    raw = np.fromfile(f"{path}.rawl", dtype="<i2").reshape(512, 512)
    assert np.array_equal((raw << 4) >> 4, ours)  # opj writes 12-bit two's complement unextended
    achieved = SPEC.pixel_bytes / len(cut)
    assert within(achieved, rate) or achieved > rate, f"{achieved:.2f} for r{rate}"
    reference = single.encode(frame, SPEC, TIERS[f"j2k-r{rate}"])
    assert len(cut) / len(reference.data) == pytest.approx(1.0, abs=0.05)
    ref = frame_metrics(frame, openjpeg.decode(reference.data).astype(np.int16), LUT)
    got = frame_metrics(frame, ours, LUT)
    assert got.psnr_db >= ref.psnr_db - 0.6


def test_the_cut_header_says_how_many_layers_it_holds(layered: tuple[np.ndarray, Layers]) -> None:
    _, layers = layered
    cut = layers.cut(4)
    assert cut[: layers.cod_offset] == layers.main_header[: layers.cod_offset]
    assert struct.unpack_from(">H", cut, layers.cod_offset + 6) == (4,)  # SGcod layers
    kept = sum(layers.packet_lengths[: 4 * layers.packets_per_layer])
    first = len(layers.data) - 2 - sum(layers.packet_lengths)
    assert cut.endswith(layers.data[first : first + kept] + b"\xff\xd9")
    assert b"\xff\x58" not in cut[: len(layers.main_header) + 14]  # no PLT: sized like a single
    assert layers.encodes <= 2


def test_bad_requests_are_codec_errors(layered: tuple[np.ndarray, Layers]) -> None:
    frame, layers = layered
    with pytest.raises(CodecError, match="cannot be cut"):
        layers.cut(0)
    with pytest.raises(CodecError, match="strictly decreasing"):
        encode_layers(frame, SPEC, [10, 20])
    with pytest.raises(CodecError, match="no SOC"):
        parse(b"\x00\x01", (1.0,))
