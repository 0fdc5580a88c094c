"""The one-buffer Part 10 encoder writes, byte for byte, what pydicom's writer writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from dcmtier.codec import part10
from dcmtier.codec.backends import Encoded
from dcmtier.codec.derive import build_output
from dcmtier.codec.pixels import metadata, read_source
from dcmtier.tiers import get_tier
from tests.support import reference_file


def _unusual_source(tmp_path: Path, index: int) -> Path:
    """CT_small with what real headers carry: a sequence kept raw, private elements, a
    retired group length, UTF-8 names, and per-instance values."""
    ds = dcmread(reference_file("CT_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jörg"
    ds.InstitutionName = "Klinikum Süd"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D4000", "SRT", "Abdomen"
    ds.AnatomicRegionSequence = Sequence([item])
    block = ds.private_block(0x0019, "DCMTIER TEST", create=True)
    block.add_new(0x10, "LO", f"private {index}")
    ds.add_new(0x00080000, "UL", 0)  # retired group length: pydicom does not write it
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{1000 + index}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = index
    ds.ImagePositionPatient = [0, 0, 2.5 * index]
    path = tmp_path / f"src{index}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("tier_name", ["j2k-lossless", "htj2k-r20"])
@pytest.mark.parametrize("frame_bytes", [[b"\xff\x4f" + b"x" * 101], [b"ab", b"cde", b"f" * 7]])
def test_every_instance_of_a_series_is_what_pydicom_writes(
    tmp_path: Path, tier_name: str, frame_bytes: list[bytes]
) -> None:
    tier = get_tier(tier_name)
    encoder = part10.Encoder()
    for index in range(1, 4):  # the first fills the template, the others reuse it
        source = read_source(_unusual_source(tmp_path, index))
        encoded = [Encoded(data, bits_stored=16, photometric="MONOCHROME2") for data in frame_bytes]
        out = build_output(
            metadata(source.dataset), encoded, tier, achieved_ratio=19.5 + index,
            lossy_source=False, pixel_data=False,
        )  # fmt: skip
        assert part10.can_encode(out, frame_bytes)
        made = encoder.encode(out, frame_bytes, template=(source.series_uid, tier.name))
        assert made is not None
        assert bytes(made.data) == part10.pydicom_bytes(out, frame_bytes)
        assert made.size == len(made.data)
        assert [p for p in made.pieces() if p in frame_bytes] == frame_bytes  # as they came


@pytest.mark.parametrize("frame_bytes", [[b"\xff\x4f" + b"x" * 101], [b"ab", b"cde", b"f" * 7]])
def test_above_the_limit_the_run_time_check_uses_stand_in_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frame_bytes: list[bytes]
) -> None:
    checked: list[list[bytes]] = []
    real = part10.agrees

    def spy(ds: Dataset, data: bytes | bytearray, frames: list[bytes]) -> bool:
        checked.append(list(frames))
        return real(ds, data, frames)

    monkeypatch.setattr(part10, "AGREE_LIMIT", 0)
    monkeypatch.setattr(part10, "agrees", spy)
    tier = get_tier("j2k-lossless")
    source = read_source(_unusual_source(tmp_path, 1))
    encoded = [Encoded(data, bits_stored=16, photometric="MONOCHROME2") for data in frame_bytes]
    out = build_output(
        metadata(source.dataset), encoded, tier, achieved_ratio=20.0, lossy_source=False,
        pixel_data=False,
    )  # fmt: skip
    made = part10.Encoder().encode(out, frame_bytes, template="series")
    assert made is not None
    assert made.data == part10.pydicom_bytes(out, frame_bytes)
    assert checked == [[b"\x00" * (2 - len(f) % 2) for f in frame_bytes]]


def test_a_template_that_disagrees_with_pydicom_hands_the_series_back_to_pydicom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tier = get_tier("j2k-lossless")
    encoder = part10.Encoder()
    frames = [b"\xff\x4f\x00\x01"]
    encoded = [Encoded(frames[0], bits_stored=16, photometric="MONOCHROME2")]
    outs = []
    for index in (1, 2):
        source = read_source(_unusual_source(tmp_path, index))
        outs.append(
            build_output(
                metadata(source.dataset),
                encoded,
                tier,
                achieved_ratio=2.0,
                lossy_source=False,
                pixel_data=False,
            )
        )
    monkeypatch.setattr(part10, "pydicom_bytes", lambda ds, frames: b"something else")
    assert encoder.encode(outs[0], frames, template="series") is None
    monkeypatch.undo()
    assert encoder.encode(outs[1], frames, template="series") is None  # still pydicom's
    assert encoder.encode(outs[1], frames, template="another series") is not None


def test_only_explicit_vr_little_endian_outputs_with_a_basic_offset_table_qualify(
    tmp_path: Path,
) -> None:
    source = read_source(_unusual_source(tmp_path, 1))
    frames = [b"\xff\x4f"]
    encoded = [Encoded(frames[0], bits_stored=16, photometric="MONOCHROME2")]
    out = build_output(
        metadata(source.dataset), encoded, get_tier("j2k-lossless"), achieved_ratio=2.0,
        lossy_source=False, pixel_data=False,
    )  # fmt: skip
    assert part10.can_encode(out, frames)
    out.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert not part10.can_encode(out, frames)


@pytest.mark.parametrize("undefined", [False, True])
def test_sequences_made_in_memory_are_laid_out_as_pydicom_writes_them(
    tmp_path: Path, undefined: bool
) -> None:
    source = read_source(_unusual_source(tmp_path, 1))
    frames = [b"\xff\x4f\x00"]
    encoded = [Encoded(frames[0], bits_stored=16, photometric="MONOCHROME2")]
    tier = get_tier("htj2k-r20")
    encoder = part10.Encoder()
    for ratio in (20.0, 21.0):  # the second reuses the nested elements' bytes
        out = build_output(
            metadata(source.dataset), encoded, tier, achieved_ratio=ratio, lossy_source=False,
            pixel_data=False,
        )  # fmt: skip
        empty = Dataset()
        nested = Dataset()
        nested.CodeValue, nested.CodeMeaning = "1", "odd"
        empty.ConceptNameCodeSequence = Sequence([nested])
        out.ContentSequence = Sequence([empty, Dataset()])
        out.ReferencedImageSequence = Sequence([])
        for keyword in ("ContentSequence", "SourceImageSequence"):
            out[keyword].is_undefined_length = undefined
            for item in out[keyword].value:
                item.is_undefined_length_sequence_item = undefined
        made = encoder.encode(out, frames, template="series")
        assert made is not None
        assert bytes(made.data) == part10.pydicom_bytes(out, frames)
