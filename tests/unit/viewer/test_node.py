"""The Node.js decoder: the pinned packages, a silent failure caught, a missing Node named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import generate_frames

from dcmtier.viewer import node as node_module
from dcmtier.viewer.check import Frame, judge
from dcmtier.viewer.node import Decoded, FrameRequest, NodeDecoder, ViewerUnavailable
from dcmtier.viewer.routing import VIEWERS


def _frame(path: Path) -> tuple[FrameRequest, Frame]:
    ds = dcmread(path)
    request = FrameRequest(
        codestream=next(generate_frames(ds.PixelData, number_of_frames=1)),
        pixel_representation=int(ds.PixelRepresentation),
        bits_allocated=int(ds.BitsAllocated),
        bits_stored=int(ds.BitsStored),
    )
    frame = Frame(request, str(ds.file_meta.TransferSyntaxUID), (ds.Rows, ds.Columns, 1),
                  np.zeros(0), (1.0, 0.0), None)  # fmt: skip
    return request, frame


def test_each_viewer_has_its_loader_releases_codec_versions(node: NodeDecoder) -> None:
    versions = node.versions()
    assert versions == {
        "cornerstone-5.6.8": {
            "openjpeg": "@cornerstonejs/codec-openjpeg@1.3.0",
            "openjph": "@cornerstonejs/codec-openjph@2.4.7",
            "charls": "@cornerstonejs/codec-charls@1.2.3",
        },
        "cornerstone-5.14.0": {
            "openjpeg": "@cornerstonejs/codec-openjpeg@1.3.6",
            "openjph": "@cornerstonejs/codec-openjph@2.4.11",
            "charls": "@cornerstonejs/codec-charls@1.2.7",
            "libjxl": "@cornerstonejs/codec-libjxl@1.1.1",
        },
    }
    for viewer, table in VIEWERS.items():  # every codec the routing names is installed
        assert set(table.values()) <= set(versions[viewer])


def test_the_lock_file_pins_what_package_json_asks_for() -> None:
    folder = node_module.NODE_DIR
    wanted = json.loads((folder / "package.json").read_text())["dependencies"]
    locked = json.loads((folder / "package-lock.json").read_text())["packages"]
    for alias, spec in wanted.items():
        name, version = spec.removeprefix("npm:").rsplit("@", 1)
        entry = locked[f"node_modules/{alias}"]
        assert (entry["name"], entry["version"]) == (name, version)
        assert entry["integrity"].startswith("sha512-")


def test_openjph_given_a_part_1_codestream_is_caught_though_it_may_raise_nothing(
    node: NodeDecoder, ct_out: Path
) -> None:
    path = next((ct_out / "derived" / "j2k-lossless").rglob("*.dcm"))
    request, frame = _frame(path)
    newest = node.decode("cornerstone-5.14.0", "openjph", request)
    assert isinstance(newest, Decoded), newest  # returns, with nothing decoded
    assert judge(newest, frame) == "decoded 0x0x0, the header says 512x512x1"
    older = node.decode("cornerstone-5.6.8", "openjph", request)
    assert isinstance(older, str) and "exception" in older  # 2.4.7 still throws
    good = node.decode("cornerstone-5.14.0", "openjpeg", request)
    assert isinstance(good, Decoded) and judge(good, frame) is None


def _decoded(
    pixels: np.ndarray, bits: int = 12, shape: tuple[int, int, int] = (4, 4, 1)
) -> Decoded:
    return Decoded(pixels, shape[1], shape[0], shape[2], bits, False, 1.0)


@pytest.mark.parametrize(
    ("decoded", "reason"),
    [
        (_decoded(np.zeros(16, "<u2"), shape=(4, 2, 1)), "decoded 4x2x1, the header says 4x4x1"),
        (_decoded(np.zeros(16, "<u1"), bits=8),
         "decoded 8-bit samples, the header says Bits Allocated 16"),
        (_decoded(np.zeros(12, "<u2")), "decoded 12 samples, 16 expected"),
        (_decoded(np.zeros(16, "<i2")), "decoded signed samples, Pixel Representation 0"),
        (_decoded(np.zeros(16, "<u2")), None),
    ],
)  # fmt: skip
def test_a_decode_of_the_wrong_size_precision_or_sign_is_not_decodable(
    decoded: Decoded, reason: str | None
) -> None:
    request = FrameRequest(b"", pixel_representation=0, bits_allocated=16, bits_stored=12)
    frame = Frame(request, "1.2.840.10008.1.2.4.90", (4, 4, 1), np.zeros(16), (1.0, 0.0), None)
    assert judge(decoded, frame) == reason


def test_a_missing_node_or_missing_packages_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(node_module.ENV_NODE, str(tmp_path / "no-node"))
    with pytest.raises(ViewerUnavailable, match="does not run"):
        node_module.node_binary()
    monkeypatch.setattr(node_module, "NODE_DIR", tmp_path)
    with pytest.raises(ViewerUnavailable, match="make install"):
        node_module.check_installed()


def test_the_command_fails_in_one_line_without_node(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ct_out: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dcmtier.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(node_module.ENV_NODE, raising=False)
    monkeypatch.setattr(node_module, "check_installed", lambda: None)
    assert main(["viewer-check", str(ct_out), "--json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dcmtier: Node.js is not installed") and err.count("\n") == 1
