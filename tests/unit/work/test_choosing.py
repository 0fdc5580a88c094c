"""Bound tiers at the rate-distortion frontier (issue #27): JPEG-LS near-lossless with NEAR per
instance, and the tiers that choose the smallest codec meeting their bound or lossless.

Sources are small noisy CT series with the values that trip JPEG-LS (`frontier_cases`): signed
with -2000 padding, signed with -32768 padding in 16 bits, unsigned 12-bit with values at 4095.
Every output is decoded by a decoder outside the project (GDCM, OpenJPEG, djxl) and compared
with its source in modality units.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from dcmtier.codec.derive import derived_uid
from dcmtier.codec.pixels import read_source
from dcmtier.codec.policy import Policy
from dcmtier.errors import PolicyRefused
from dcmtier.measure.metrics import ModalityLUT
from dcmtier.records import OK, REFUSED, TierResult
from dcmtier.sample import write_ct_series
from dcmtier.tiers import J2K, JLS, Bound, get_tier
from dcmtier.work import choosing, gating
from dcmtier.work.compress import CompressConfig, compress_file
from dcmtier.work.finish import _quality_rows
from dcmtier.work.nearlossless import near_for
from tests.support import djxl_frames, gdcm_frames, openjpeg_frames
from tests.unit.work.frontier_cases import KINDS, write_case

LOSSLESS = ("j2k-lossless", "htj2k-lossless", "jls-lossless", "jxl-lossless")
RATES = ("j2k-r3", "j2k-r5", "j2k-r10")
TIERS = (
    "maxerr20",
    "maxerr150",
    "best-lossless",
    "jls-maxerr20",
    "j2k-maxerr20",
    *LOSSLESS,
    *RATES,
)
METHODS = {
    "jls": "ISO_14495_1",
    "j2k": "ISO_15444_1",
    "htj2k": "ISO_15444_15",
    "jxl": "ISO_18181_1",
}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[TierResult]]]:
    """Each case (2 slices of 64x64) compressed into every tier, measured."""
    root = tmp_path_factory.mktemp("frontier")
    tiers = [get_tier(name) for name in TIERS]
    config = CompressConfig(root / "out", measure=gating.measure)
    done: dict[str, dict[str, list[TierResult]]] = {}
    for kind in KINDS:
        by_tier: dict[str, list[TierResult]] = {name: [] for name in TIERS}
        for path in write_case(root / kind, kind, slices=2, size=64):
            for result in compress_file(path, tiers, config):
                by_tier[result.tier].append(result)
        done[kind] = by_tier
    return done


def _independent(path: Path, workdir: Path) -> np.ndarray:
    """The output's one frame in modality units, decoded outside dcmtier."""
    ds = dcmread(path, stop_before_pixels=True)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    if syntax.startswith("1.2.840.10008.1.2.4.11"):
        frame = djxl_frames(path, workdir)[0]
    elif syntax.startswith("1.2.840.10008.1.2.4.20"):
        frame = openjpeg_frames(path, workdir)[0]
    else:
        frame = gdcm_frames(path, workdir)[0]
    return _modality(frame, ds)


def _modality(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    return frame.astype(np.float64) * slope + intercept


def _source(result: TierResult) -> np.ndarray:
    ds = dcmread(result.path)
    return _modality(ds.pixel_array, ds)


def _bytes(results: list[TierResult]) -> int:
    assert all(r.status == OK for r in results), [r.reason for r in results]
    return sum(int(r.pixel_bytes_out or 0) for r in results)


@pytest.mark.parametrize("kind", KINDS)
def test_every_tier_is_made_for_every_case(
    made: dict[str, dict[str, list[TierResult]]], kind: str
) -> None:
    for name, results in made[kind].items():
        assert [r.status for r in results] == [OK, OK], (name, [r.reason for r in results])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tier", ["maxerr20", "maxerr150", "jls-maxerr20"])
def test_bound_outputs_decode_outside_dcmtier_within_their_bound(
    made: dict[str, dict[str, list[TierResult]]], kind: str, tier: str, tmp_path: Path
) -> None:
    bound = get_tier(tier).bound
    assert bound is not None and bound.max_abs_diff is not None
    for result in made[kind][tier]:
        error = np.abs(_independent(Path(str(result.output)), tmp_path) - _source(result))
        assert float(error.max()) <= bound.max_abs_diff
        assert float(error.max()) > 0  # lossy: the bound is used, not lossless by accident


@pytest.mark.parametrize("kind", KINDS)
def test_best_lossless_is_bit_exact_and_no_bigger_than_any_lossless_tier(
    made: dict[str, dict[str, list[TierResult]]], kind: str, tmp_path: Path
) -> None:
    results = made[kind]
    for result in results["best-lossless"]:
        decoded = _independent(Path(str(result.output)), tmp_path)
        assert np.array_equal(decoded, _source(result))
        assert result.params["candidates"]  # what each candidate gave is recorded
    best = _bytes(results["best-lossless"])
    assert best <= min(_bytes(results[name]) for name in LOSSLESS)


@pytest.mark.parametrize("kind", KINDS)
def test_maxerr20_is_no_bigger_than_near_lossless_or_j2k_meeting_20(
    made: dict[str, dict[str, list[TierResult]]], kind: str
) -> None:
    """At 64x64 the ratio to J2K is less favourable than the 0.21-0.41 measured at 256x256."""
    results = made[kind]
    chosen = _bytes(results["maxerr20"])
    assert chosen <= _bytes(results["jls-maxerr20"])
    assert chosen <= 0.6 * _bytes(results["j2k-maxerr20"])
    meeting = [
        _bytes(results[rate])
        for rate in RATES
        if max(m["max_abs_diff"] for r in results[rate] for m in r.frame_metrics) <= 20
    ]  # -32768 padding: not even j2k-r3 meets 20 HU at this size
    assert chosen <= 0.6 * min(meeting, default=chosen / 0.6)


@pytest.mark.parametrize("kind", KINDS)
def test_lossy_outputs_are_labelled_with_the_chosen_codec_bound_and_near(
    made: dict[str, dict[str, list[TierResult]]], kind: str
) -> None:
    for result in made[kind]["maxerr20"]:
        src, out = dcmread(result.path), dcmread(str(result.output))
        assert out.LossyImageCompression == "01"
        assert out.LossyImageCompressionMethod == METHODS[str(result.codec)]
        assert float(out.LossyImageCompressionRatio) == pytest.approx(result.pixel_ratio, rel=0.01)
        assert out.ImageType[0] == "DERIVED"
        assert out.SOPInstanceUID != src.SOPInstanceUID
        assert out.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        description = str(out.DerivationDescription)
        assert "tier maxerr20" in description and "max |diff| <= 20" in description
        near = result.params["near"]
        if result.codec == "jls":
            assert f"NEAR={near}" in description and "JPEG-LS" in description
            assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.81"
        if result.codec == "jxl":  # a lattice coded losslessly: lossy all the same
            assert f"NEAR={near}: values on a lattice of step {2 * near + 1}" in description
            assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.112"


def test_signed_near_lossless_output_is_unsigned_with_the_intercept_moved(
    made: dict[str, dict[str, list[TierResult]]],
) -> None:
    result = made["padded"]["jls-maxerr20"][0]
    src, out = dcmread(result.path), dcmread(str(result.output))
    assert (src.PixelRepresentation, out.PixelRepresentation) == (1, 0)
    assert float(out.RescaleIntercept) == float(src.RescaleIntercept) - 32768
    assert out.PixelPaddingValue == 0  # -32768 moved with the pixels
    assert out.BitsStored == src.BitsStored == 16


def test_the_quality_rows_name_the_chosen_codec_per_instance(
    made: dict[str, dict[str, list[TierResult]]],
) -> None:
    results = made["signed"]["best-lossless"]
    rows = _quality_rows(results, get_tier("best-lossless"), "run", "study")
    assert {row["codec"] for row in rows} == {r.codec for r in results}
    assert "auto" not in {row["codec"] for row in rows}
    assert {row["transfer_syntax"] for row in rows} == {r.transfer_syntax for r in results}


def test_mammography_is_refused_the_lossy_tiers_and_takes_best_lossless(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path / "mg", slices=1, rows=32, columns=32, modality="MG")
    tiers = [get_tier(n) for n in ("maxerr20", "jls-maxerr5", "best-lossless")]
    results = {r.tier: r for r in compress_file(path, tiers, CompressConfig(tmp_path / "out"))}
    for name in ("maxerr20", "jls-maxerr5"):
        assert results[name].status == REFUSED
        assert results[name].rule == "modality:MG:lossless-only"
    assert results["best-lossless"].status == OK


def _source_image(tmp_path: Path, slope: float = 1.0) -> tuple[object, ModalityLUT]:
    (path,) = write_ct_series(tmp_path, slices=1, rows=32, columns=32, noise_hu=15.0)
    if slope != 1.0:
        ds = dcmread(path)
        ds.RescaleSlope = slope
        ds.save_as(path, enforce_file_format=True)
    source = read_source(path)
    return source, ModalityLUT.from_dataset(source.dataset, bits_stored=source.spec.bits_stored)


@pytest.mark.parametrize(
    ("bound", "slope", "near"),
    [(20, 1.0, 20), (20, 0.5, 40), (5, 3.0, 1), (0.3, 0.1, 2), (20, 30.0, 0), (1e6, 1.0, 255)],
)
def test_near_is_the_bound_over_the_slope_rounded_down_and_capped(
    tmp_path: Path, bound: float, slope: float, near: int
) -> None:
    source, lut = _source_image(tmp_path, slope)
    tier = replace(get_tier("jls-maxerr20"), bound=Bound(max_abs_diff=bound))
    assert near_for(tier, source, lut) == near  # type: ignore[arg-type]


def test_a_bound_below_one_stored_step_codes_losslessly_and_keeps_the_uid(
    tmp_path: Path,
) -> None:
    source, lut = _source_image(tmp_path, slope=30.0)
    chosen = choosing.code_near(source, get_tier("jls-maxerr20"), lut, Policy())  # type: ignore[arg-type]
    assert chosen.tier.lossless and chosen.tier.transfer_syntax == "1.2.840.10008.1.2.4.80"
    result = compress_file(source.path, [get_tier("jls-maxerr20")], CompressConfig(tmp_path / "o"))[
        0
    ]  # type: ignore[attr-defined]
    assert result.status == OK and result.sop_instance_uid_out == result.sop_instance_uid_in
    assert result.transfer_syntax == "1.2.840.10008.1.2.4.80"


def test_a_modality_lut_table_or_an_ssim_only_bound_is_refused_with_its_rule(
    tmp_path: Path,
) -> None:
    source, lut = _source_image(tmp_path)
    ssim_only = replace(get_tier("jls-maxerr20"), bound=Bound(min_ssim=0.99))
    with pytest.raises(PolicyRefused) as refused:
        near_for(ssim_only, source, lut)  # type: ignore[arg-type]
    assert refused.value.rule == "bound:not-in-stored-units"
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    source.dataset.ModalityLUTSequence = DicomSequence([item])  # type: ignore[attr-defined]
    with pytest.raises(PolicyRefused) as refused:
        near_for(get_tier("jls-maxerr20"), source, lut)  # type: ignore[arg-type]
    assert refused.value.rule == "bound:non-linear-modality-lut"


def test_a_refused_candidate_is_named_and_another_codec_chosen(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path / "src", slices=1, rows=64, columns=64, noise_hu=15.0)
    ds = dcmread(path)
    del ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType  # signed, no rescale: no offset
    ds.save_as(path, enforce_file_format=True)
    (result,) = compress_file(path, [get_tier("maxerr20")], CompressConfig(tmp_path / "out"))
    assert result.status == OK, result.reason
    assert result.params["candidates"]["jls"] == "refused (codec:jls:signed-needs-rescale)"
    assert result.params["candidates"]["jxl"] == "refused (codec:jxl:signed-needs-rescale)"
    assert result.codec in ("htj2k", "j2k")
    out = dcmread(str(result.output))
    assert out.SOPInstanceUID == derived_uid(
        ds.SOPInstanceUID,
        get_tier("maxerr20").chosen(
            {"htj2k": get_tier("htj2k-lossless").codec, "j2k": get_tier("j2k-lossless").codec}[
                str(result.codec)
            ]
        ),
    )


def test_j2k_is_searched_only_while_htj2k_has_not_lost_to_the_bar(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path / "src", slices=1, rows=64, columns=64, noise_hu=15.0)
    source = read_source(path)
    lut = ModalityLUT.from_dataset(source.dataset, bits_stored=source.spec.bits_stored)
    tier, policy = get_tier("maxerr20"), Policy(modality_rules={})
    chosen = choosing.choose(source, tier, lut, policy, None)
    tried = chosen.tried
    assert str(tried["htj2k"]).startswith("over ")
    assert tried["j2k"] == f"not searched: HTJ2K lost to {chosen.frames.bytes} bytes"
    without_htj2k = replace(tier, candidates=(JLS, J2K))
    tried = choosing.choose(source, without_htj2k, lut, policy, None).tried
    assert set(tried) == {"jls", "j2k"} and not str(tried["j2k"]).startswith("not")


def test_process_records_the_chosen_codec_in_the_catalogue_and_parquet(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from sqlalchemy import text

    from dcmtier.catalogue import Catalogue
    from dcmtier.catalogue.engine import make_engine
    from dcmtier.cli import main

    write_case(tmp_path / "src", "padded", slices=2, size=48)
    out = tmp_path / "out"
    argv = ["process", str(tmp_path / "src"), "--out", str(out), "--jobs", "1"]
    assert main([*argv, "--tier", "maxerr20", "--tier", "best-lossless"]) == 0
    url = f"sqlite:///{out / 'catalogue.db'}"
    engine = make_engine(url)
    query = "SELECT tier, codec, transfer_syntax FROM derived_instances ORDER BY tier"
    with engine.connect() as connection:
        rows = set(connection.execute(text(query)).all())
    assert rows == {
        ("best-lossless", "jxl", "1.2.840.10008.1.2.4.110"),
        ("maxerr20", "jxl", "1.2.840.10008.1.2.4.112"),  # the lattice: lossy JPEG XL
    }
    (part,) = (out / "quality").glob("tier=maxerr20/study=*/part-0.parquet")
    assert set(pq.read_table(part).column("codec").to_pylist()) == {"jxl"}
    (package,) = (out / "packages").glob("*/best-lossless.zip")
    with zipfile.ZipFile(package) as archive:
        assert json.loads(archive.read("manifest.json"))["codec"] == "jxl"  # not "auto"
    Catalogue.downgrade(url, "0011")  # the columns go, and come back
    with engine.connect() as connection:
        columns = {c[1] for c in connection.execute(text("PRAGMA table_info(derived_instances)"))}
    assert not {"codec", "transfer_syntax"} & columns
    Catalogue.upgrade(url)
    engine.dispose()
