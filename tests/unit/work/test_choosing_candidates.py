"""A policy restricting the codec-choosing tiers' candidates (issue #27: to what the deployed
viewers decode): never a left-out codec, the bound still met, ties to the faster decoder, and
the restriction in every path's recorded inputs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from dcmtier.codec.backends import Encoded
from dcmtier.codec.candidates import Candidates
from dcmtier.codec.policy import Policy
from dcmtier.records import OK, TierResult
from dcmtier.tiers import HTJ2K, J2K, JLS, JXL, get_tier
from dcmtier.work import gating
from dcmtier.work.choosing import beats
from dcmtier.work.compress import CompressConfig, compress_file
from dcmtier.work.nearlossless import Frames
from tests.unit.work.frontier_cases import KINDS, write_case
from tests.unit.work.test_choosing import _independent, _source

NO_JXL = ["htj2k", "jls", "j2k"]
CHOSEN = ("maxerr20", "maxerr150", "best-lossless")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[TierResult]]]:
    """The noisy CT cases (2 slices of 64x64) into the choosing tiers, JPEG XL left out."""
    root = tmp_path_factory.mktemp("restricted")
    policy = Policy(candidates=Candidates.parse(NO_JXL))
    config = CompressConfig(root / "out", policy, measure=gating.measure)
    done: dict[str, dict[str, list[TierResult]]] = {}
    for kind in KINDS:
        by_tier: dict[str, list[TierResult]] = {name: [] for name in CHOSEN}
        for path in write_case(root / kind, kind, slices=2, size=64):
            for result in compress_file(path, [get_tier(n) for n in CHOSEN], config):
                by_tier[result.tier].append(result)
        done[kind] = by_tier
    return done


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tier", CHOSEN)
def test_without_jpeg_xl_no_instance_gets_it_and_the_bound_still_holds(
    made: dict[str, dict[str, list[TierResult]]], kind: str, tier: str, tmp_path: Path
) -> None:
    bound = get_tier(tier).bound
    for result in made[kind][tier]:
        assert result.status == OK, result.reason
        assert result.codec in NO_JXL
        assert not str(result.transfer_syntax).startswith("1.2.840.10008.1.2.4.11")
        assert set(result.params["candidates"]) <= set(NO_JXL)  # JPEG XL not even tried
        out = dcmread(str(result.output))
        assert f"tier {tier}" in str(out.get("DerivationDescription", f"tier {tier}"))
        error = np.abs(_independent(Path(str(result.output)), tmp_path) - _source(result))
        if bound is None:
            assert float(error.max()) == 0
        else:
            assert bound.max_abs_diff is not None
            assert 0 < float(error.max()) <= bound.max_abs_diff


def test_the_noisy_ct_takes_jpeg_xl_unless_it_is_left_out(tmp_path: Path) -> None:
    """The restriction is what keeps JPEG XL out: unrestricted, maxerr20 chooses it here."""
    (path, *_) = write_case(tmp_path / "src", "signed", slices=1, size=64)
    tier = get_tier("maxerr20")
    (free,) = compress_file(path, [tier], CompressConfig(tmp_path / "free"))
    assert free.codec == "jxl"
    policy = Policy(candidates=Candidates.parse(None, "cornerstone-5.6.8"))
    (kept,) = compress_file(path, [tier], CompressConfig(tmp_path / "kept", policy))
    assert kept.status == OK and kept.codec == "jls"
    description = str(dcmread(str(kept.output)).DerivationDescription)
    assert "JPEG-LS" in description and "NEAR=20" in description and "JPEG XL" not in description


def _frames(codec_tier: str, codec: object, size: int) -> Frames:
    frames = Frames(get_tier(codec_tier).chosen(codec), [], [])
    frames.add(Encoded(b"\0" * size, "MONOCHROME2", 16), 1.0)  # its size counted as it comes
    return frames


def test_a_tie_goes_to_the_faster_decoder_whatever_order_the_policy_lists() -> None:
    candidates = Policy(candidates=Candidates.parse(["j2k", "htj2k"])).candidates
    order = candidates.for_tier(get_tier("maxerr20"))
    assert order == (HTJ2K, J2K)
    htj2k, j2k = _frames("maxerr20", HTJ2K, 100), _frames("maxerr20", J2K, 100)
    assert beats(htj2k, j2k, order) and not beats(j2k, htj2k, order)
    assert beats(_frames("maxerr20", J2K, 99), htj2k, order)  # smaller wins over faster
    every = get_tier("best-lossless").candidates
    assert every == (HTJ2K, JLS, JXL, J2K)
    for found_in in (every, every[::-1]):  # equal sizes, found in either order
        best = _frames("best-lossless", found_in[0], 100)
        for codec in found_in[1:]:
            found = _frames("best-lossless", codec, 100)
            best = found if beats(found, best, every) else best
        assert best.tier.codec is HTJ2K


def test_process_with_the_policy_file_records_the_restriction_and_never_jxl(
    tmp_path: Path,
) -> None:
    from sqlalchemy import text

    from dcmtier.catalogue.engine import make_engine
    from dcmtier.cli import main

    write_case(tmp_path / "src", "padded", slices=2, size=48)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"viewers": ["cornerstone-5.6.8"]}))
    out = tmp_path / "out"
    argv = ["process", str(tmp_path / "src"), "--out", str(out), "--jobs", "1"]
    tiers = ["--tier", "maxerr20", "--tier", "best-lossless", "--tier", "j2k-r10"]
    assert main([*argv, *tiers, "--policy", str(policy)]) == 0
    engine = make_engine(f"sqlite:///{out / 'catalogue.db'}")
    with engine.connect() as connection:
        codecs = set(connection.execute(text("SELECT tier, codec FROM derived_instances")).all())
        jobs = connection.execute(text("SELECT tier, parameters FROM jobs")).all()
    engine.dispose()
    assert {codec for _, codec in codecs} <= {*NO_JXL}
    assert {tier for tier, _ in codecs} == {"maxerr20", "best-lossless", "j2k-r10"}
    recorded = {tier: json.loads(p) if isinstance(p, str) else p for tier, p in jobs}
    assert recorded["maxerr20"]["candidates"] == NO_JXL
    assert recorded["best-lossless"]["candidates"] == NO_JXL
    assert "candidates" not in recorded["j2k-r10"]


def test_the_restriction_changes_a_choosing_pairs_inputs_and_no_other(tmp_path: Path) -> None:
    from dcmtier.records import Study
    from dcmtier.work.config import RunConfig
    from dcmtier.work.layout import Layout

    files = write_case(tmp_path / "src", "signed", slices=1, size=32)
    study = Study("1.2.3", tuple(files), {path: f"1.2.3.{n}" for n, path in enumerate(files)})
    free = RunConfig(Layout(tmp_path / "out"), "run")
    kept = replace(free, policy=Policy(candidates=Candidates.parse(NO_JXL)))
    for name in CHOSEN:
        assert free.inputs(study, get_tier(name)) != kept.inputs(study, get_tier(name))
    for name in ("j2k-r10", "jls-maxerr20", "jxl-lossless"):
        assert free.inputs(study, get_tier(name)) == kept.inputs(study, get_tier(name))
        assert free.parameters(get_tier(name)) == kept.parameters(get_tier(name))


def test_compress_takes_the_policy_files_candidates_and_a_bad_one_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dcmtier.cli import main

    (path, *_) = write_case(tmp_path / "src", "signed", slices=1, size=64)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"candidates": {"maxerr20": ["htj2k", "j2k"]}}))
    argv = ["compress", str(path), "--tier", "maxerr20", "--out", str(tmp_path / "out"), "--json"]
    assert main([*argv, "--policy", str(policy)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["codec"] in ("htj2k", "j2k")
    policy.write_text(json.dumps({"candidates": ["htj2k", "jpegxl"]}))
    assert main([*argv, "--policy", str(policy)]) == 2
    (error,) = capsys.readouterr().err.splitlines()
    assert str(policy) in error and "'jpegxl' is not a codec family" in error
