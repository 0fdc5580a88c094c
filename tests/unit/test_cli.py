"""The ``dcmtier`` command as a user runs it: exit codes, JSON lines, parallel = serial."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmtier.cli import COMMANDS, build_parser, command_module, main
from dcmtier.sample import write_ct_series
from tests.support import reference_file

REQUIRED_FIELDS = {
    "source", "tier", "status", "reason", "output", "sop_instance_uid_in",
    "sop_instance_uid_out", "transfer_syntax", "target_ratio", "pixel_bytes_in",
    "pixel_bytes_out", "pixel_ratio", "file_bytes_in", "file_bytes_out", "file_ratio", "encode_ms",
}  # fmt: skip
# measured per run, so they differ between runs (peak_rss_bytes: the process's memory high-water)
TIMING = ("encode_ms", "verify_ms", "decode_ms", "steps_ms", "peak_rss_bytes")


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
    assert (chooses["codec"], chooses["candidates"]) == ("auto", ["htj2k", "jls", "jxl", "j2k"])
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
    parser = build_parser(command)._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
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
    made = sorted(out.rglob("*.dcm"))
    assert [p.relative_to(out).parts[0] for p in made] == ["j2k-lossless", "j2k-r10"]
    for derived in made:  # lossy: a Source Image Sequence; lossless: same UID
        assert main(["quality", str(first), str(derived), "--json"]) == 0
        assert capsys.readouterr().err == ""


# --- the command as a process: what it imports, what it exits with ------------------------

HEAVY = ("numpy", "pydicom", "sqlalchemy", "airflow", "imagecodecs", "pyarrow")
DCMTIER = [sys.executable, "-m", "dcmtier.cli"]
# run `main(argv)` with its output swallowed, then print the top-level modules it imported
_IMPORTS = """
import contextlib, io, json, sys
from dcmtier.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        assert exc.code == 0, exc
print(json.dumps(sorted(sys.modules)))
"""


def _env(**extra: str) -> dict[str, str]:
    """This interpreter's path (the worktree's package first), no catalogue from outside."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **extra}
    env.pop("DCMTIER_CATALOGUE_URL", None)
    return env


def _imported_by(*argv: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _IMPORTS, *argv], capture_output=True,
                          text=True, check=True, env=_env())  # fmt: skip
    modules: list[str] = json.loads(done.stdout)
    return modules


def test_help_lists_every_command_and_imports_no_command_and_no_heavy_library() -> None:
    modules = _imported_by("--help")
    assert "rich_argparse" in modules  # the help was formatted
    assert [m for m in modules if m.startswith("dcmtier.commands.")] == []
    assert sorted({m.split(".")[0] for m in modules} & set(HEAVY)) == []
    shown = subprocess.run([*DCMTIER, "--help"], capture_output=True, text=True, check=True,
                           env=_env(COLUMNS="200")).stdout  # fmt: skip
    for name, info in COMMANDS.items():
        assert re.search(rf"^ +{name} +{re.escape(info.summary)}$", shown, re.M), name


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_a_commands_help_imports_its_module_and_no_heavy_library(command: str) -> None:
    modules = _imported_by(command, "--help")
    assert COMMANDS[command].module in modules
    assert sorted({m.split(".")[0] for m in modules} & set(HEAVY)) == []


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Inputs for the exit-code cases: a landing area with one small CT, one with a truncated
    MR, a file that is not DICOM, a plain file, and the CT processed into ``processed``."""
    tmp = tmp_path_factory.mktemp("exits")
    for folder, name in (("landing", "CT_small.dcm"), ("broken", "MR_truncated.dcm")):
        (tmp / folder).mkdir()
        shutil.copy(reference_file(name), tmp / folder / name)
    (tmp / "notdicom.dcm").write_text("not DICOM\n")
    (tmp / "afile").write_text("x")
    processed = tmp / "processed"
    done = subprocess.run(
        [*DCMTIER, "process", str(tmp / "landing"), "--out", str(processed), "--tier",
         "j2k-lossless", "--tier", "j2k-r20", "--jobs", "1"],
        capture_output=True, text=True, env=_env(), cwd=tmp, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ct = tmp / "landing" / "CT_small.dcm"
    return {
        "tmp": str(tmp), "landing": str(tmp / "landing"), "broken": str(tmp / "broken"),
        "ct": str(ct), "ct_key": str(dcmread(ct).SOPInstanceUID), "afile": str(tmp / "afile"),
        "notdicom": str(tmp / "notdicom.dcm"), "processed": str(processed),
    }  # fmt: skip


def test_report_with_the_out_of_process_shows_the_tiers_written(area: dict[str, str]) -> None:
    """`dcmtier process --out DIR` then `dcmtier report --out DIR`, from another folder."""
    elsewhere = Path(area["tmp"]) / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    for form in ([], ["--json"]):
        done = subprocess.run(
            [*DCMTIER, "report", "--out", area["processed"], *form], capture_output=True,
            text=True, env=_env(), cwd=elsewhere, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        if form:
            rows = _json_lines(done.stdout)
            savings = [r for r in rows if r["view"] == "savings_by_tier"]
            assert [r["tier"] for r in savings] == ["j2k-lossless", "j2k-r20"]
            assert all(isinstance(r["compressed_bytes"], int) for r in savings)
        else:
            assert re.search(r"^\| j2k-lossless +\|", done.stdout, re.M), done.stdout
            assert re.search(r"^\| j2k-r20 +\|", done.stdout, re.M), done.stdout
    assert not (elsewhere / "catalogue.db").exists()


# an object store that cannot be reached, fast: a closed port on loopback, no retries
UNREACHABLE_S3 = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "y", "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard",
}  # fmt: skip
ARCHIVE = "dicomweb+http://127.0.0.1:9/dicom-web"  # a DICOMweb archive that cannot be reached
# id -> the command line (formatted with `area`), the exit code its help gives, extra env
EXITS: dict[str, tuple[list[str], int, dict[str, str]]] = {
    "tiers-0": (["tiers", "--json"], 0, {}),
    "tiers-2": (["tiers", "--bogus"], 2, {}),
    "compress-0": (["compress", "{ct}", "--tier", "j2k-lossless", "--out", "{tmp}/c0"], 0, {}),
    "compress-1": (["compress", "{broken}", "--tier", "j2k-lossless", "--out", "{tmp}/c1"], 1, {}),
    "compress-2": (["compress", "{ct}", "--tier", "j2k-r7", "--out", "{tmp}/c2"], 2, {}),
    "process-0": (
        ["process", "{landing}", "--tier", "j2k-lossless", "--out", "{tmp}/p0", "--no-catalogue"],
        0,
        {},
    ),
    "process-1": (
        ["process", "{broken}", "--tier", "j2k-lossless", "--out", "{tmp}/p1", "--no-catalogue"],
        1,
        {},
    ),
    "process-2": (["process", "{landing}", "--out", "{afile}"], 2, {}),
    "sample-0": (["sample", "{tmp}/s0", "--slices", "1", "--size", "16"], 0, {}),
    "sample-1": (["sample", "{afile}/s1", "--slices", "1", "--size", "16"], 1, {}),
    "sample-2": (["sample", "{tmp}/s2", "--slices", "0"], 2, {}),
    "quality-0": (["quality", "{ct}", "{ct}"], 0, {}),
    "quality-1": (["quality", "{ct}", "{notdicom}"], 1, {}),
    "quality-2": (["quality", "{ct}", "{ct}", "--gate", "nonsense"], 2, {}),
    "db-0": (["db", "current", "--out", "{tmp}"], 0, {}),
    "db-1": (["db", "upgrade", "--catalogue", "sqlite:///{afile}/c.db"], 1, {}),
    "db-2": (["db", "downgrade", "--out", "{tmp}"], 2, {}),  # no REVISION
    "report-0": (["report", "--out", "{processed}"], 0, {}),
    "report-1": (["report", "--out", "{tmp}"], 1, {}),  # no catalogue there
    "report-2": (["report", "--view", "nonsense"], 2, {}),
    "discover-0": (["discover", "{landing}", "--out", "{tmp}/d0"], 0, {}),
    "discover-1": (["discover", "{landing}", "--catalogue", "sqlite:///{tmp}/none.db"], 1, {}),
    "discover-2": (["discover", "{tmp}/no-landing", "--out", "{tmp}/d2"], 2, {}),
    "locate-0": (["locate", "{ct_key}", "--out", "{processed}"], 0, {}),
    "locate-1": (["locate", "1.2.3.4", "--out", "{processed}"], 1, {}),
    "locate-2": (["locate", "--out", "{processed}"], 2, {}),  # no KEY
    "cache-0": (["cache", "list", "--out", "{processed}"], 0, {}),
    "cache-1": (["cache", "list", "--out", "s3://bucket/out"], 1, UNREACHABLE_S3),
    "cache-2": (["cache", "list", "--out", "{afile}"], 2, {}),
    "bench-2": (["bench", "--runs", "0"], 2, {}),
    # nothing of j2k-r50 was made: no request is sent (tests/integration/test_dicomweb.py sends)
    "publish-0": (["publish", "{processed}", "--tier", "j2k-r50", "--to", ARCHIVE], 0, {}),
    "publish-1": (["publish", "{processed}", "--tier", "j2k-r20", "--to", ARCHIVE], 1, {}),
    "publish-2": (["publish", "{processed}", "--tier", "j2k-r20", "--to", "http://x/"], 2, {}),
    "viewer-check-0": (["viewer-check", "{tmp}/no-outputs"], 0, {}),  # no Node.js needed
    "viewer-check-1": (["viewer-check", "{processed}"], 1, {"DCMTIER_NODE": "/nonexistent/node"}),
    "viewer-check-2": (["viewer-check", "{processed}", "--tier", "nonsense"], 2, {}),
    "estimate-0": (
        ["estimate", "{landing}", "--out", "{tmp}/e0", "--tier", "j2k-lossless", "--sample", "1"],
        0,
        {},
    ),
    "estimate-1": (["estimate", "--check", "--out", "{processed}"], 1, {}),  # no estimate yet
    "estimate-2": (["estimate", "--out", "{tmp}/e2"], 2, {}),  # neither LANDING nor --check
}
# documented codes no case runs: the benchmark takes minutes at the least
NOT_RUN = {("bench", 0), ("bench", 1)}
# exit 1 because an instance failed: the failure is a row of the output, not an error line
REPORTED = {"compress-1", "process-1"}


def _documented(command: str) -> set[int]:
    """The exit codes a command's help gives, from "Exit status: 0 ..., 1 ..., 2 ..."."""
    epilog = " ".join(str(command_module(command).EPILOG).split())
    listed = epilog.split("Exit status:", 1)[1]
    return {int(code) for pair in re.findall(r"(?:^|,)\s*(\d+)(?:\s*/\s*(\d+))?\s", listed)
            for code in pair if code}  # fmt: skip


def test_every_exit_code_a_help_gives_has_a_case() -> None:
    cases = {(argv[0], code) for argv, code, _ in EXITS.values()}
    for command in COMMANDS:
        codes = _documented(command)
        assert {0, 2} <= codes, command
        wanted = {(command, code) for code in codes if code < 128}  # signals: tests/faults
        assert wanted - NOT_RUN <= cases, command


@pytest.mark.parametrize("case", EXITS, ids=str)
def test_the_process_exits_with_the_code_its_help_gives(case: str, area: dict[str, str]) -> None:
    argv, code, env = EXITS[case]
    assert code in _documented(argv[0])
    done = subprocess.run(
        [*DCMTIER, *(arg.format(**area) for arg in argv)], capture_output=True, text=True,
        env=_env(**env), cwd=area["tmp"], timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    if case in REPORTED:
        assert "failed" in done.stdout, done.stdout
    elif code:  # one line says why (argparse adds its usage line above it)
        assert done.stderr.strip().splitlines()[-1].startswith("dcmtier"), done.stderr
