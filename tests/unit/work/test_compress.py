"""Real scanner files x tiers: every output is correct DICOM that independent decoders read.

Lossless outputs must equal the source exactly; lossy ones must carry the lossy attributes,
land within +-5 % of the target ratio where the target is reachable, and decode the same in
GDCM / OpenJPEG as in pydicom.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import generate_frames

from dcmtier.codec.derive import derived_uid
from dcmtier.codec.pixels import read_source
from dcmtier.records import FAILED, OK, REFUSED, TierResult
from dcmtier.tiers import TIERS
from dcmtier.work import writing
from dcmtier.work.compress import CompressConfig, compress_file
from tests.support import dciodvfy_errors, gdcm_frames, openjpeg_frames, reference_file

MATRIX_TIERS = (
    "j2k-lossless",
    "j2k-r10",
    "j2k-r100",
    "htj2k-lossless",
    "htj2k-r20",
    "jls-lossless",
    "jls-near2",
)


@dataclass(frozen=True)
class Case:
    """A reference input and the tiers policy or codec limits refuse for it."""

    name: str
    refused: frozenset[str] = frozenset()


LOSSY = frozenset(t for t in MATRIX_TIERS if not TIERS[t].lossless)
NOT_J2K_LOSSLESS = frozenset(t for t in MATRIX_TIERS if t != "j2k-lossless")
# signed stored values without a Rescale Intercept to compensate the offset that near-lossless
# JPEG-LS codes them with: refused (codec:jls:signed-needs-rescale)
SIGNED_NO_RESCALE = frozenset({"jls-near2"})
CASES = (
    Case("CT_small.dcm"),  # CT, signed 16-bit, explicit little endian
    Case("MR_small_bigendian.dcm", refused=SIGNED_NO_RESCALE),  # explicit big endian
    Case("MR_small_implicit.dcm", refused=SIGNED_NO_RESCALE),  # implicit VR
    Case("MR_small_jp2klossless.dcm", refused=SIGNED_NO_RESCALE),  # already compressed, lossless
    Case("MR_small_RLE.dcm", refused=SIGNED_NO_RESCALE),  # RLE input
    Case("693_J2KI.dcm"),  # already lossy J2K CT, signed 14 of 16 bits
    Case("JPGExtended.dcm"),  # already lossy JPEG 12-bit NM
    Case("examples_overlay.dcm"),  # unsigned 12 of 16 bits
    Case("examples_rgb_color.dcm"),  # US RGB
    Case("examples_ybr_color.dcm"),  # US YBR_FULL_422 JPEG, 30 frames
    Case("SC_ybr_full_422_uncompressed.dcm"),
    Case("SC_rgb_rle_2frame.dcm"),  # multi-frame RGB
    Case("examples_palette.dcm", refused=LOSSY),  # palette indices: lossless only
    Case("liver_1frame.dcm", refused=NOT_J2K_LOSSLESS),  # SEG, 1-bit
    Case("mg", refused=LOSSY),  # mammography: lossless only
    Case("monochrome1"),  # CR MONOCHROME1, unsigned 12 of 16
)


@pytest.fixture(scope="module")
def outputs(
    tmp_path_factory: pytest.TempPathFactory, derived_inputs: dict[str, Path]
) -> dict[str, tuple[Path, dict[str, TierResult]]]:
    """Compress every case once into every matrix tier."""
    out_dir = tmp_path_factory.mktemp("out")
    tiers = [TIERS[name] for name in MATRIX_TIERS]
    done = {}
    for case in CASES:
        src = derived_inputs.get(case.name) or reference_file(case.name)
        results = compress_file(src, tiers, CompressConfig(out_dir))
        done[case.name] = (src, {r.tier: r for r in results})
    return done


PAIRS = [(case, tier) for case in CASES for tier in MATRIX_TIERS]


@pytest.mark.parametrize(("case", "tier"), PAIRS, ids=[f"{c.name}-{t}" for c, t in PAIRS])
def test_each_input_gets_its_tier_or_a_stated_refusal(
    outputs: dict[str, tuple[Path, dict[str, TierResult]]], case: Case, tier: str
) -> None:
    _, results = outputs[case.name]
    result = results[tier]
    if tier in case.refused:
        assert result.status == REFUSED, result
        assert result.rule and result.reason
        return
    assert result.status == OK, result.reason


def _ok_pairs() -> list[tuple[Case, str]]:
    return [(c, t) for c, t in PAIRS if t not in c.refused]


@pytest.mark.parametrize(
    ("case", "tier"), _ok_pairs(), ids=[f"{c.name}-{t}" for c, t in _ok_pairs()]
)
def test_output_decodes_in_an_independent_decoder_as_the_tier_promises(
    outputs: dict[str, tuple[Path, dict[str, TierResult]]],
    case: Case,
    tier: str,
    tmp_path: Path,
) -> None:
    src, results = outputs[case.name]
    result = results[tier]
    assert result.status == OK, result.reason
    out = Path(str(result.output))
    source_frames = list(read_source(src).iter_frames())
    theirs = (
        openjpeg_frames(out, tmp_path) if tier.startswith("htj2k") else gdcm_frames(out, tmp_path)
    )
    ours = list(read_source(out).iter_frames())
    assert len(theirs) == len(source_frames)
    for frame, (independent, pydicom_decoded, original) in enumerate(
        zip(theirs, ours, source_frames, strict=True)
    ):
        shaped = independent.reshape(original.shape)
        diff = np.abs(shaped.astype(np.int64) - original.astype(np.int64))
        if TIERS[tier].lossless:
            assert diff.max() == 0, f"frame {frame} not bit-exact"
        elif TIERS[tier].near:  # signed sources come out offset: compare modality values
            error = np.abs(_modality(shaped, out) - _modality(original, src))
            assert error.max() <= TIERS[tier].near * abs(float(dcmread(src).get("RescaleSlope", 1)))
        # the independent decoder and pydicom read the same image from the same file
        both = np.abs(shaped.astype(np.int64) - pydicom_decoded.astype(np.int64))
        assert both.max() <= 1, f"frame {frame}: decoders disagree by {both.max()}"


@pytest.mark.parametrize(
    ("case", "tier"), _ok_pairs(), ids=[f"{c.name}-{t}" for c, t in _ok_pairs()]
)
def test_output_attributes_follow_the_standard(
    outputs: dict[str, tuple[Path, dict[str, TierResult]]], case: Case, tier: str
) -> None:
    src_path, results = outputs[case.name]
    src, out = dcmread(src_path), dcmread(str(results[tier].output))
    t = TIERS[tier]
    assert out.file_meta.TransferSyntaxUID == t.transfer_syntax
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    _assert_encapsulation(out)
    colour = int(src.SamplesPerPixel) == 3
    if colour and t.codec.label != "jls":
        assert out.PhotometricInterpretation == ("YBR_RCT" if t.lossless else "YBR_ICT")
        assert out.PlanarConfiguration == 0
    elif not colour:
        assert out.PhotometricInterpretation == src.PhotometricInterpretation
    if src.PhotometricInterpretation == "PALETTE COLOR":
        assert "RedPaletteColorLookupTableData" in out
    if t.lossless:
        assert out.SOPInstanceUID == src.SOPInstanceUID
        assert out.get("LossyImageCompression") == src.get("LossyImageCompression")
        return
    _assert_lossy_attributes(src, out, tier)


def _modality(frame: np.ndarray, path: Path) -> np.ndarray:
    """Stored values of ``frame`` as the file at ``path`` maps them (its linear rescale)."""
    ds = dcmread(path, stop_before_pixels=True)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    return frame.astype(np.float64) * slope + intercept


def _assert_encapsulation(out: object) -> None:
    ds = out  # a pydicom Dataset
    frames = int(ds.get("NumberOfFrames") or 1)  # type: ignore[attr-defined]
    data = ds.PixelData  # type: ignore[attr-defined]
    assert data[:4] == b"\xfe\xff\x00\xe0", "Basic Offset Table item must come first"
    bot_length = int.from_bytes(data[4:8], "little")
    assert bot_length == (4 * frames if frames > 1 else bot_length)
    assert bot_length in (0, 4 * frames)
    assert len(list(generate_frames(data, number_of_frames=frames))) == frames


def _assert_lossy_attributes(src: object, out: object, tier: str) -> None:
    s, o, t = src, out, TIERS[tier]
    earlier_ratios = _multi(s, "LossyImageCompressionRatio")
    ratios = _multi(o, "LossyImageCompressionRatio")
    methods = _multi(o, "LossyImageCompressionMethod")
    assert o.LossyImageCompression == "01"  # type: ignore[attr-defined]
    assert len(ratios) == len(earlier_ratios) + 1
    assert methods[-1] == t.codec.lossy_method
    assert o.ImageType[0] == "DERIVED"  # type: ignore[attr-defined]
    assert o.SOPInstanceUID == derived_uid(s.SOPInstanceUID, t)  # type: ignore[attr-defined]
    assert o.SOPInstanceUID != s.SOPInstanceUID  # type: ignore[attr-defined]
    ref = o.SourceImageSequence[0]  # type: ignore[attr-defined]
    assert ref.ReferencedSOPInstanceUID == s.SOPInstanceUID  # type: ignore[attr-defined]
    purpose = ref.PurposeOfReferenceCodeSequence[0].CodeValue
    lossy_source = getattr(s, "LossyImageCompression", None) == "01"
    assert purpose == ("121322" if lossy_source else "121320")
    codes = [c.CodeValue for c in o.DerivationCodeSequence]  # type: ignore[attr-defined]
    assert "113040" in codes
    assert f"{float(ratios[-1]):.2f}:1" in o.DerivationDescription  # type: ignore[attr-defined]


def _multi(ds: object, keyword: str) -> list[object]:
    value = getattr(ds, keyword, None)
    if value is None or value == "":
        return []
    return (
        list(value) if isinstance(value, list) or type(value).__name__ == "MultiValue" else [value]
    )


DCIODVFY_PAIRS = [(c, t) for c, t in _ok_pairs() if not t.startswith("htj2k")]


@pytest.mark.parametrize(
    ("case", "tier"), DCIODVFY_PAIRS, ids=[f"{c.name}-{t}" for c, t in DCIODVFY_PAIRS]
)
def test_dciodvfy_finds_no_error_the_source_did_not_have(
    outputs: dict[str, tuple[Path, dict[str, TierResult]]], case: Case, tier: str
) -> None:
    src, results = outputs[case.name]
    new = dciodvfy_errors(Path(str(results[tier].output))) - dciodvfy_errors(src)
    assert not new, "\n".join(sorted(new))


def test_bad_inputs_fail_with_one_line_naming_the_instance_or_its_file_key(tmp_path: Path) -> None:
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("not an image\n")
    corrupt = tmp_path / "corrupt_j2k.dcm"
    ds = dcmread(reference_file("MR_small_jp2klossless.dcm"))
    data = bytearray(ds.PixelData)
    data[16:80] = b"\x00" * 64  # the codestream's SOC and SIZ: no decoder can go on
    ds.PixelData = bytes(data)
    ds.save_as(corrupt)
    cut = tmp_path / "cut_header.dcm"
    cut.write_bytes(reference_file("CT_small.dcm").read_bytes()[:700])
    cases = {
        not_dicom: "not a DICOM Part 10 file",
        reference_file("no_meta.dcm"): "not a DICOM Part 10 file",
        reference_file("MR_truncated.dcm"): "pixel data cannot be decoded",
        cut: "",
        corrupt: "pixel data cannot be decoded",
        reference_file("rtdose.dcm"): "unsupported layout",
        tmp_path / "missing.dcm": "no such file",
    }
    for path, expected in cases.items():
        (result,) = compress_file(path, [TIERS["j2k-lossless"]], CompressConfig(tmp_path / "out"))
        assert result.status == FAILED, (path, result)
        assert result.reason is not None
        assert "\n" not in result.reason
        assert result.source == _key(path), path  # its SOP Instance UID, else a content hash
        assert result.reason.startswith(f"{result.source}: "), result.reason
        assert path.name not in result.reason and str(path.parent) not in result.reason
        assert result.path == str(path)  # in memory only, for quarantine and --show-paths
        assert "path" not in result.as_dict()
        assert expected in result.reason


@pytest.mark.parametrize(
    ("header", "expected"),
    [({"RescaleSlope": 0}, "invalid input: RescaleSlope 0.0: no modality LUT maps stored values"),
     ({"RescaleSlope": "abc"}, "invalid input: RescaleSlope 'abc' is not a number"),
     ({"BitsStored": 0}, "invalid input: BitsStored 0"),
     ({"Rows": 0}, "invalid input: Rows 0"),
     ({"Columns": 0}, "invalid input: Columns 0"),
     ({"NumberOfFrames": 0}, "invalid input: NumberOfFrames 0")],
    ids=["slope-0", "slope-text", "bits-stored-0", "rows-0", "columns-0", "frames-0"],
)  # fmt: skip
def test_a_header_no_image_can_follow_fails_that_instance_as_invalid_input(
    tmp_path: Path, header: dict[str, object], expected: str
) -> None:
    ds = dcmread(reference_file("CT_small.dcm"))
    for keyword, value in header.items():
        if keyword == "RescaleSlope" and isinstance(value, str):
            ds["RescaleSlope"].VR = "LO"  # a DS cannot hold text; some writers put it anyway
        setattr(ds, keyword, value)
    path = tmp_path / "DOE_JANE.dcm"
    ds.save_as(path)
    tiers = [TIERS["j2k-lossless"], TIERS["j2k-r20"]]
    results = compress_file(path, tiers, CompressConfig(tmp_path / "out"))
    assert [r.status for r in results] == [FAILED, FAILED]
    for result in results:
        assert result.reason == f"{ds.SOPInstanceUID}: {expected}", result.reason  # one line
        assert result.error == "InvalidInput"
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_a_codec_surprise_fails_that_instance_and_tier_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcmtier.codec.backends import openjpeg

    def surprise(*args: object, **kwargs: object) -> object:
        raise RuntimeError("codec state corrupted")

    monkeypatch.setattr(openjpeg, "BACKEND", dataclasses.replace(openjpeg.BACKEND, encode=surprise))
    tiers = [TIERS["j2k-lossless"], TIERS["htj2k-lossless"]]
    path = reference_file("CT_small.dcm")
    broken, fine = compress_file(path, tiers, CompressConfig(tmp_path / "out"))
    uid = dcmread(path, stop_before_pixels=True).SOPInstanceUID
    assert broken.status == FAILED and broken.error == "RuntimeError"
    assert broken.reason == f"{uid}: unexpected RuntimeError: codec state corrupted"
    assert fine.status == OK


def _key(path: Path) -> str:
    """The file key as defined: a readable header's SOP Instance UID, else a content hash."""
    try:
        sop_uid = str(dcmread(path, stop_before_pixels=True).get("SOPInstanceUID") or "")
    except Exception:
        sop_uid = ""
    if sop_uid:
        return sop_uid
    data = path.read_bytes() if path.is_file() else None
    if data is None:
        return hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:32]
    return hashlib.sha256(data).hexdigest()[:32]


def test_non_image_objects_are_skipped_and_copied_only_when_asked(tmp_path: Path) -> None:
    sr = reference_file("test-SR.dcm")
    (skipped,) = compress_file(sr, [TIERS["j2k-r20"]], CompressConfig(tmp_path / "a"))
    assert skipped.status == "skipped"
    assert "no pixel data" in str(skipped.reason)
    assert skipped.output is None
    assert not (tmp_path / "a").exists()
    (copied,) = compress_file(
        sr, [TIERS["j2k-r20"]], CompressConfig(tmp_path / "b", no_pixels=writing.copy_through)
    )
    assert copied.status == "skipped"
    assert Path(str(copied.output)).read_bytes() == sr.read_bytes()


def test_a_rerun_writes_the_same_uids_and_bytes(tmp_path: Path) -> None:
    tiers = [TIERS["j2k-r20"], TIERS["htj2k-r20"], TIERS["j2k-lossless"]]
    first = compress_file(reference_file("CT_small.dcm"), tiers, CompressConfig(tmp_path))
    before = {r.output: Path(str(r.output)).read_bytes() for r in first}
    second = compress_file(reference_file("CT_small.dcm"), tiers, CompressConfig(tmp_path))
    assert [r.sop_instance_uid_out for r in first] == [r.sop_instance_uid_out for r in second]
    assert {r.output: Path(str(r.output)).read_bytes() for r in second} == before
    assert len(list(tmp_path.rglob("*.dcm"))) == 3
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_lossless_output_that_does_not_verify_is_never_left_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcmtier.codec.backends import openjpeg

    real = openjpeg._encode

    def lossy_instead(frame: np.ndarray, spec: object, ratio: float | None) -> bytes:
        return real(frame, spec, 20.0)  # type: ignore[arg-type]

    monkeypatch.setattr(openjpeg, "_encode", lossy_instead)
    (result,) = compress_file(
        reference_file("CT_small.dcm"), [TIERS["j2k-lossless"]], CompressConfig(tmp_path)
    )
    assert result.status == FAILED
    assert result.error == "VerificationFailed"
    assert "differs from source" in str(result.reason)
    assert not list(tmp_path.rglob("*.dcm"))
    assert not list(tmp_path.rglob("*.tmp"))


LAYERED_CASES = ("CT_small.dcm", "examples_rgb_color.dcm", "examples_ybr_color.dcm", "monochrome1")
LAYERED_TIERS = ("j2k-r10", "j2k-r20", "j2k-r100")


@pytest.fixture(scope="module")
def layered_outputs(
    tmp_path_factory: pytest.TempPathFactory, derived_inputs: dict[str, Path]
) -> dict[str, tuple[Path, dict[str, TierResult]]]:
    out_dir = tmp_path_factory.mktemp("layered")
    done = {}
    for name in LAYERED_CASES:
        src = derived_inputs.get(name) or reference_file(name)
        options = CompressConfig(out_dir, strategy="layered")
        results = compress_file(src, [TIERS[t] for t in LAYERED_TIERS], options)
        done[name] = (src, {r.tier: r for r in results})
    return done


LAYERED_PAIRS = [(c, t) for c in LAYERED_CASES for t in LAYERED_TIERS]


@pytest.mark.parametrize(
    ("case", "tier"), LAYERED_PAIRS, ids=[f"{c}-{t}" for c, t in LAYERED_PAIRS]
)
def test_layered_outputs_pass_the_same_checks_as_per_tier_outputs(
    layered_outputs: dict[str, tuple[Path, dict[str, TierResult]]],
    case: str,
    tier: str,
    tmp_path: Path,
) -> None:
    src, results = layered_outputs[case]
    result = results[tier]
    assert result.status == OK, result.reason
    assert result.params["strategy"] == "layered"
    assert result.params["layer"] == LAYERED_TIERS[::-1].index(tier) + 1
    out = Path(str(result.output))
    source_ds, out_ds = dcmread(src), dcmread(out)
    _assert_encapsulation(out_ds)
    _assert_lossy_attributes(source_ds, out_ds, tier)
    gdcm = gdcm_frames(out, tmp_path)  # GDCM reads the cut codestreams inside DICOM
    ours = list(read_source(out).iter_frames())
    for independent, pydicom_decoded in zip(gdcm, ours, strict=True):
        shaped = independent.reshape(pydicom_decoded.shape)
        assert np.abs(shaped.astype(np.int64) - pydicom_decoded.astype(np.int64)).max() <= 1
    new = dciodvfy_errors(out) - dciodvfy_errors(src)
    assert not new, "\n".join(sorted(new))
