"""The ``dcmtier`` command as a user runs it: exit codes, JSON lines, parallel = serial."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmtier.cli import COMMANDS, build_parser, main
from dcmtier.sample import write_ct_series
from tests.support import reference_file

REQUIRED_FIELDS = {
    "source", "tier", "status", "reason", "output", "sop_instance_uid_in",
    "sop_instance_uid_out", "transfer_syntax", "target_ratio", "pixel_bytes_in",
    "pixel_bytes_out", "pixel_ratio", "file_bytes_in", "file_bytes_out", "file_ratio", "encode_ms",
}  # fmt: skip
TIMING = ("encode_ms", "verify_ms", "decode_ms", "steps_ms")


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing" / "nested"
    folder.mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm", "examples_rgb_color.dcm", "rtplan.dcm"):
        shutil.copy(reference_file(name), folder / name)
    return tmp_path / "landing"


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_compress_json_has_one_line_per_source_and_tier(
    landing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "compress", str(landing), "--tier", "j2k-lossless", "--tier", "j2k-r20",
            "--out", str(tmp_path / "out"), "--json", "--jobs", "1", "--show-paths",
        ]
    )  # fmt: skip
    rows = _json_lines(capsys.readouterr().out)
    assert code == 0
    assert len(rows) == 4 * 2
    assert all(row.keys() >= REQUIRED_FIELDS for row in rows)
    assert all(r["source"] == dcmread(str(r["path"])).SOPInstanceUID for r in rows)
    statuses = {(Path(str(r["path"])).name, r["tier"]): r["status"] for r in rows}
    assert statuses[("rtplan.dcm", "j2k-r20")] == "skipped"
    assert statuses[("CT_small.dcm", "j2k-r20")] == "ok"
    for row in rows:
        if row["status"] == "ok":
            out = Path(str(row["output"]))
            assert out.is_file()
            parts = out.relative_to(tmp_path / "out").parts
            assert parts[0] == row["tier"]
            assert parts[-1] == f"{row['sop_instance_uid_out']}.dcm"


def test_parallel_jobs_give_the_same_results_as_one(
    landing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        assert main(["compress", str(landing), "--tier", "j2k-r10", "--tier", "jls-lossless",
                     "--out", str(out), "--json", "--jobs", jobs]) == 0  # fmt: skip
        rows = _json_lines(capsys.readouterr().out)
        for row in rows:
            for key in TIMING:
                row.pop(key)
            row["output"] = row["output"] and str(Path(str(row["output"])).relative_to(out))
        files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.dcm")}
        outputs[jobs] = (rows, files)
    assert outputs["1"] == outputs["2"]


def test_read_back_verifies_through_pydicom_and_writes_the_same_files(
    landing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = {}
    for flag in ([], ["--read-back"]):
        out = tmp_path / ("read-back" if flag else "default")
        assert main(["compress", str(landing), "--tier", "htj2k-lossless", "--tier", "j2k-r20",
                     "--out", str(out), "--json", "--jobs", "1", *flag]) == 0  # fmt: skip
        rows = [r for r in _json_lines(capsys.readouterr().out) if r["status"] == "ok"]
        assert len(rows) == 6
        assert all(set(r["steps_ms"]) == {"read", "header", "write", "verify", "decode"}  # type: ignore[arg-type]
                   for r in rows)  # fmt: skip
        outputs[bool(flag)] = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.dcm")}
    assert outputs[True] == outputs[False]


def test_a_failed_instance_exits_1_after_the_rest_is_done(
    landing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (landing / "broken.dcm").write_bytes(b"DICM but not really")
    shutil.copy(reference_file("MR_truncated.dcm"), landing / "truncated.dcm")
    code = main(["compress", str(landing), "--tier", "j2k-r20", "--out", str(tmp_path / "o"),
                 "--json", "--show-paths"])  # fmt: skip
    rows = _json_lines(capsys.readouterr().out)
    assert code == 1
    by_name = {Path(str(r["path"])).name: r for r in rows}
    assert by_name["broken.dcm"]["status"] == "failed"
    assert by_name["truncated.dcm"]["status"] == "failed"
    truncated = by_name["truncated.dcm"]
    assert str(truncated["reason"]).startswith(f"{truncated['source']}: ")  # named by its key
    assert (
        truncated["source"]
        == dcmread(reference_file("MR_truncated.dcm"), stop_before_pixels=True).SOPInstanceUID
    )
    assert by_name["CT_small.dcm"]["status"] == "ok"
    assert by_name["MR_small.dcm"]["status"] == "ok"


def test_the_table_lists_every_result_by_file_key_and_a_summary(
    landing: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["compress", str(landing), "--tier", "j2k-r20", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert str(dcmread(reference_file("CT_small.dcm")).SOPInstanceUID) in out
    assert "3 ok, 1 skipped" in out
    monkeypatch.chdir(tmp_path)  # short paths: the table does not fold them
    assert main(["compress", "landing", "--tier", "j2k-r20", "--out", "o", "--show-paths"]) == 0
    assert "landing/nested/CT_small.dcm" in capsys.readouterr().out


def test_without_show_paths_no_file_name_or_folder_is_printed(
    landing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (landing / "nested" / "broken.dcm").write_bytes(b"DICM but not really")
    for form in ([], ["--json"]):
        code = main(["compress", str(landing), "--tier", "j2k-r20", "--out",
                     str(tmp_path / "o"), "--jobs", "1", *form])  # fmt: skip
        printed = capsys.readouterr()
        assert code == 1
        for name in ("nested", "CT_small", "MR_small", "rtplan", "broken", "examples_rgb"):
            assert name not in printed.out + printed.err, (form, name)


@pytest.mark.parametrize(
    "argv",
    [
        ["compress", "--out", "x"],
        ["compress", "somewhere", "--out", "x", "--tier", "j2k-r7"],
        ["compress", "/no/such/folder", "--out", "x"],
        ["frobnicate"],
    ],
    ids=["no-source", "unknown-tier", "missing-source", "unknown-command"],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    assert code == 2
    assert capsys.readouterr().err.strip()


def test_tiers_json_lists_every_tier(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tiers", "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert len(rows) == 33
    r20 = next(r for r in rows if r["name"] == "j2k-r20")
    assert r20 == {
        "name": "j2k-r20", "codec": "j2k", "lossless": False, "target_ratio": 20.0, "near": 0,
        "transfer_syntax": "1.2.840.10008.1.2.4.91", "use": "review", "effort": None,
        "bound": None, "default": True,
    }  # fmt: skip
    jxl = next(r for r in rows if r["name"] == "jxl-lossless")
    assert (jxl["codec"], jxl["effort"], jxl["transfer_syntax"], jxl["default"]) == (
        "jxl",
        3,
        "1.2.840.10008.1.2.4.110",
        False,
    )
    maxerr = next(r for r in rows if r["name"] == "j2k-maxerr20")
    assert maxerr["bound"] == "max |diff| <= 20 (modality units)" and not maxerr["lossless"]
    chooses = next(r for r in rows if r["name"] == "maxerr20")
    assert (chooses["codec"], chooses["candidates"]) == ("auto", ["htj2k", "jls", "j2k"])
    assert "candidates" not in maxerr


def test_tiers_piped_shows_every_name_whole_in_80_columns() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dcmtier.cli", "tiers"], capture_output=True, text=True,
        check=True, env={**os.environ, "COLUMNS": "80", "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert "…" not in done.stdout
    from dcmtier.tiers import TIERS

    names = [line.split()[0] for line in lines[2:]]
    assert names == list(TIERS)
    assert "1.2.840.10008.1.2.4.201" in done.stdout  # UIDs whole too


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_every_command_has_the_same_help_format_and_plain_text(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as shown:
        main([command, "--help"])
    assert shown.value.code == 0
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert not description.startswith(("``", "dcmtier ")), description
    assert "``" not in text
    assert description[0].isupper()
    parser = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    assert parser.formatter_class.__name__ == "HelpFormatter"  # the one shared format
    assert "Exit status" in text


@pytest.mark.parametrize("command", ["compress", "process"])
@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_below_one_is_a_usage_error(
    command: str, jobs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        main([command, str(tmp_path), "--out", str(tmp_path / "o"), "--jobs", jobs])
    assert usage.value.code == 2
    assert "--jobs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_quality_warns_when_the_two_files_are_unrelated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = write_ct_series(tmp_path / "l", slices=2, rows=64, columns=64)
    assert main(["quality", str(first), str(second), "--json"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and "Source Image Sequence" in err
    out = tmp_path / "o"
    assert main(["compress", str(first), "--tier", "j2k-r10", "--tier", "j2k-lossless",
                 "--out", str(out), "--json", "--jobs", "1"]) == 0  # fmt: skip
    capsys.readouterr()
    for derived in out.rglob("*.dcm"):  # lossy: a Source Image Sequence; lossless: same UID
        assert main(["quality", str(first), str(derived), "--json"]) == 0
        assert capsys.readouterr().err == ""
