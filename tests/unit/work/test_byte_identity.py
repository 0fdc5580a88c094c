"""Issue #17's fast path writes the bytes dcmtier wrote before it, and takes the common file.

The outputs are compared with SHA-256 digests main made before the change, when every output
was written by pydicom's writer and read back (`fixtures/outputs_before_17.json`, see
`identity_cases`). That the one-buffer writer gives pydicom's bytes for any dataset it takes
is `tests/unit/codec/test_part10.py`'s to show.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dcmtier.codec.part10 import Part10
from dcmtier.records import LAYERED, OK, PER_TIER
from dcmtier.sample import write_ct_series
from dcmtier.tiers import get_tier
from dcmtier.work import verify, writing
from dcmtier.work.compress import CompressConfig, compress_file
from tests.unit.work import identity_cases

FIXTURE = Path(__file__).parent / "fixtures" / "outputs_before_17.json"


@pytest.mark.parametrize("strategy", [PER_TIER, LAYERED])
def test_outputs_are_the_bytes_main_wrote_before_the_fast_path(
    tmp_path: Path, strategy: str
) -> None:
    expected = json.loads(FIXTURE.read_text())
    assert identity_cases.versions() == expected["versions"], (
        "codec or pydicom versions differ from those the digests were made with: check "
        "tests/unit/codec/test_part10.py passes, then regenerate the fixture"
    )
    made = identity_cases.make_outputs(tmp_path / "sources", tmp_path / "out", strategy)
    want = expected["outputs"][strategy]
    assert sorted(made) == sorted(want)
    differ = [name for name in want if made[name] != want[name]]
    assert differ == [], f"{len(differ)} outputs changed: {differ[:5]}"


def test_the_common_file_takes_the_fast_path_and_others_pydicom_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written_by_pydicom: list[Path] = []
    original = writing.write_atomic

    def spy(ds: object, target: Path, **kwargs: object) -> None:
        written_by_pydicom.append(target)
        original(ds, target, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writing, "write_atomic", spy)
    ct = write_ct_series(tmp_path / "ct", slices=2, rows=64, columns=64)
    others = [identity_cases.reference_file("MR_small_implicit.dcm")]
    tier = get_tier("htj2k-r20")
    for source in ct:
        (result,) = compress_file(source, [tier], CompressConfig(tmp_path / "out"))
        assert result.status == OK
        assert set(result.steps_ms) == {"read", "header", "write", "verify", "decode"}
    assert written_by_pydicom == []
    for source in others:
        (result,) = compress_file(source, [tier], CompressConfig(tmp_path / "out"))
        assert result.status == OK
    assert len(written_by_pydicom) == len(others)


def test_a_file_whose_bytes_differ_from_the_buffer_fails_and_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = writing.write_part_atomic

    def corrupting(part: Part10, target: Path, **kwargs: object) -> None:
        last = bytearray(part.frames[-1])
        last[-20] ^= 0xFF  # a byte of the last codestream
        flipped = Part10(part.head, [*part.frames[:-1], bytes(last)])
        original(flipped, target, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writing, "write_part_atomic", corrupting)
    (source,) = write_ct_series(tmp_path / "ct", slices=1, rows=64, columns=64)
    (result,) = compress_file(
        source, [get_tier("htj2k-lossless")], CompressConfig(tmp_path / "out")
    )
    assert result.status == "failed" and result.error == "VerificationFailed"
    assert result.reason is not None and "bytes differ from the" in result.reason
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []  # nor a temp file


def test_a_lossless_codestream_that_decodes_to_other_values_fails_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcmtier.codec.backends import htj2k

    real = htj2k.BACKEND
    wrong = dataclasses.replace(real, decode=lambda data, spec: real.decode(data, spec) + 1)
    monkeypatch.setattr(htj2k, "BACKEND", wrong)
    (source,) = write_ct_series(tmp_path / "ct", slices=1, rows=64, columns=64)
    for way in (verify.in_memory, verify.read_back):
        options = CompressConfig(tmp_path / f"out-{way.__name__}", verify=way)
        (result,) = compress_file(source, [get_tier("htj2k-lossless")], options)
        assert result.status == "failed" and result.error == "VerificationFailed"
        assert result.reason is not None and "lossless output differs" in result.reason
