"""``dcmtier process`` records into the catalogue; ``dcmtier db`` and ``dcmtier report``."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from dcmtier.catalogue import Catalogue, store
from dcmtier.catalogue.engine import ENV_URL
from dcmtier.catalogue.schema import head_revision
from dcmtier.cli import main
from dcmtier.commands import report as report_command
from dcmtier.sample import write_ct_series
from tests.integration.catalogue_cases import make_landing

TIER_ARGS = ("--tier", "j2k-lossless", "--tier", "j2k-r10", "--jobs", "1")


@pytest.fixture(autouse=True)
def _no_environment_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


@pytest.fixture
def processed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A landing area processed into ``out`` with the embedded catalogue; returns ``out``."""
    make_landing(tmp_path / "landing")
    out = tmp_path / "out"
    assert main(["process", str(tmp_path / "landing"), "--out", str(out), *TIER_ARGS]) == 1
    capsys.readouterr()
    return out


def test_process_records_into_the_embedded_catalogue_and_a_rerun_adds_only_attempts(
    processed: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{processed}/catalogue.db"
    counts = Catalogue.connect(url).row_counts()
    assert counts["derived_instances"] == 10 and counts["jobs"] == 4
    assert main(["process", str(tmp_path / "landing"), "--out", str(processed), *TIER_ARGS]) == 1
    assert Catalogue.connect(url).row_counts() == {**counts, "jobs": 8}


def test_no_catalogue_records_nothing(tmp_path: Path) -> None:
    make_landing(tmp_path / "landing")
    out = tmp_path / "out"
    assert main(["process", str(tmp_path / "landing"), "--out", str(out),
                 "--tier", "j2k-lossless", "--no-catalogue"]) == 1  # fmt: skip
    assert not (out / "catalogue.db").exists()
    assert (out / "derived" / "j2k-lossless").is_dir()


def test_an_explicit_catalogue_must_be_migrated_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_landing(tmp_path / "landing")
    url = f"sqlite:///{tmp_path}/elsewhere.db"
    argv = ["process", str(tmp_path / "landing"), "--out", str(tmp_path / "out"),
            "--catalogue", url, *TIER_ARGS]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"run `dcmtier db upgrade --catalogue {url}`" in err
    assert not (tmp_path / "out" / "derived").exists()  # refused before any work
    assert main(["db", "upgrade", "--catalogue", url]) == 0
    head = head_revision()
    assert f"revision {head} (this dcmtier needs {head})" in capsys.readouterr().out
    assert main(argv) == 1  # partial: the truncated slice
    assert Catalogue.connect(url).row_counts()["packages"] == 4


@pytest.mark.parametrize("under", ["c.db", "sub/c.db"])
def test_db_upgrade_under_a_file_names_the_file_in_the_way_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], under: str
) -> None:
    (tmp_path / "export.zip").write_bytes(b"PK")  # a regular file where a folder should be
    url = f"sqlite:///{tmp_path}/export.zip/{under}"
    assert main(["db", "upgrade", "--catalogue", url]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"dcmtier: cannot create the catalogue {tmp_path}/export.zip/{under}: "
        f"{tmp_path}/export.zip is a file, not a folder\n"
    )


def _rows(text: str) -> list[dict[str, Any]]:
    """JSON Lines: one object a line, every line one object."""
    return [json.loads(line) for line in text.splitlines()]


def test_db_current_and_downgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--out", str(tmp_path)]
    assert main(["db", "current", *data]) == 0
    assert "revision none" in capsys.readouterr().out
    assert not (tmp_path / "catalogue.db").exists()
    assert main(["db", "upgrade", *data]) == 0
    assert main(["db", "downgrade", *data]) == 2  # a revision must be named
    assert main(["db", "downgrade", "base", "--yes", *data]) == 0
    assert "revision none" in capsys.readouterr().out.splitlines()[-1]
    assert main(["db", "current", "--json", *data]) == 0
    [current] = _rows(capsys.readouterr().out)
    assert current == {"catalogue": f"sqlite:///{tmp_path}/catalogue.db", "revision": None,
                       "head": head_revision()}  # fmt: skip


class _Keyboard:
    """A terminal on stdin that answers ``answer``."""

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def isatty(self) -> bool:
        return True

    def readline(self) -> str:
        return self.answer + "\n"


def test_db_downgrade_asks_first_and_refuses_when_nobody_can_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ["--out", str(tmp_path)]
    url = f"sqlite:///{tmp_path}/catalogue.db"
    assert main(["db", "upgrade", *data]) == 0
    capsys.readouterr()
    assert main(["db", "downgrade", "base", *data]) == 2  # stdin is not a terminal here
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --yes" in err and "drops every catalogue table" in err
    monkeypatch.setattr("sys.stdin", _Keyboard("no"))
    assert main(["db", "downgrade", "0002", *data]) == 1
    assert "not confirmed: nothing changed" in capsys.readouterr().err
    assert Catalogue.connect(url).row_counts()  # still at head
    monkeypatch.setattr("sys.stdin", _Keyboard("yes"))
    assert main(["db", "downgrade", "0002", *data]) == 0
    assert "revision 0002" in capsys.readouterr().out


def test_db_history_lists_every_revision_up_to_head(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("0001  ") and lines[-1].startswith(f"{head_revision()}  ")
    assert "``" not in "".join(lines)
    assert main(["db", "history", "--json"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [r["revision"] for r in rows] == [line.split()[0] for line in lines]


def test_report_prints_markdown_tables_an_analyst_can_paste(
    processed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--out", str(processed)]) == 0
    lines = [line.rstrip() for line in capsys.readouterr().out.splitlines() if line.strip()]
    savings = lines.index("savings_by_tier")
    assert lines[savings + 1].startswith("| tier ") and "| zip_bytes |" in lines[savings + 1]
    assert lines[savings + 3].startswith("| j2k-lossless |")
    quality_at = lines.index("quality_by_tier")
    lossless = lines[quality_at + 3].split("|")
    assert lossless[1].strip() == "j2k-lossless" and lossless[3].strip() == "inf"
    header = [cell.strip() for cell in lines[quality_at + 1].split("|")]
    lossy = dict(zip(header, (c.strip() for c in lines[quality_at + 4].split("|")), strict=True))
    assert lossy["tier"] == "j2k-r10"  # the range-relative columns print as the nominal ones
    for nominal, ranged in (("psnr_min", "psnr_range_min"), ("ssim_min", "ssim_range_min")):
        decimals = len(lossy[nominal].split(".")[1])
        assert re.fullmatch(rf"\d+\.\d{{{decimals}}}", lossy[ranged]), (ranged, lossy[ranged])
    ranged_lossless = dict(zip(header, (c.strip() for c in lossless), strict=True))
    assert (ranged_lossless["psnr_range_min"], ranged_lossless["ssim_range_min"]) == (
        "inf",
        "1.0000",
    )


def test_report_json_lines_and_csv_carry_the_views(
    processed: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_URL, f"sqlite:///{processed}/catalogue.db")
    expected = Catalogue.connect(f"sqlite:///{processed}/catalogue.db").report()
    assert main(["report", "--json"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [r["view"] for r in rows] == ["savings_by_tier"] * len(expected["savings_by_tier"]) + [
        "quality_by_tier"
    ] * len(expected["quality_by_tier"])
    savings = [{k: v for k, v in r.items() if k != "view"} for r in rows if
               r["view"] == "savings_by_tier"]  # fmt: skip
    assert savings == expected["savings_by_tier"]
    lossless = next(r for r in rows if r["view"] == "quality_by_tier")
    assert lossless["tier"] == "j2k-lossless" and lossless["psnr_min"] is None  # +inf
    assert main(["report", "--csv", "--view", "savings_by_tier"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["tier"] for r in rows] == ["j2k-lossless", "j2k-r10"]
    assert [int(r["compressed_bytes"]) for r in rows] == [
        r["compressed_bytes"] for r in expected["savings_by_tier"]
    ]


def test_report_on_a_missing_catalogue_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--out", str(tmp_path)]) == 1
    assert "dcmtier db upgrade" in capsys.readouterr().err


def test_report_views_are_the_views_the_migrations_make(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/catalogue.db"
    Catalogue.upgrade(url)
    made = set(inspect(Catalogue.connect(url).engine).get_view_names())
    assert set(report_command.VIEWS) == set(store.VIEWS) == made


@pytest.mark.parametrize("view", report_command.VIEWS)
@pytest.mark.parametrize("fmt", ["table", "csv", "json"])  # no flag, --csv, --json
def test_report_prints_every_view_in_every_format(
    processed: Path, tmp_path: Path, view: str, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if view == "backlog":  # a study that landed and no run has taken yet: it waits
        write_ct_series(tmp_path / "later", slices=2, rows=32, columns=32, seed=13)
        assert main(["discover", str(tmp_path / "later"), "--out", str(processed)]) == 0
        capsys.readouterr()
    if view == "delivery_by_tier":  # a tier checked with the viewers' codecs
        from dcmtier.catalogue.delivery import record_viewer_checks
        from tests.unit.catalogue.delivery_cases import viewer_row

        checked = [viewer_row("j2k-lossless", "cornerstone-5.6.8", True, 1.0)]
        record_viewer_checks(f"sqlite:///{processed}/catalogue.db", checked)
    if view == "estimate_vs_actual":  # a forecast kept by `dcmtier estimate`
        from dcmtier.catalogue.engine import make_engine
        from dcmtier.catalogue.estimates import save

        engine = make_engine(f"sqlite:///{processed}/catalogue.db")
        line = {"scope": "tier", "tier": "j2k-r20", "studies": 1, "source_bytes": 3000,
                "stored_bytes": 600, "stored_bytes_low": 500, "stored_bytes_high": 700,
                "cpu_hours": 0.01}  # fmt: skip
        with engine.begin() as connection:
            save(
                connection,
                "e1",
                datetime.now(UTC),
                [line],
                {"sample_studies": 1, "seed": 0, "slots": 1},
            )
        engine.dispose()
    expected = Catalogue.connect(f"sqlite:///{processed}/catalogue.db").report([view])[view]
    assert expected  # the processed landing has rows in every view (the broken slice: failures)
    form = [] if fmt == "table" else [f"--{fmt}"]
    assert main(["report", "--out", str(processed), "--view", view, *form]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        rows = _rows(out)
        assert len(rows) == len(expected) and {r["view"] for r in rows} == {view}
    elif fmt == "csv":
        assert len(list(csv.DictReader(io.StringIO(out)))) == len(expected)
    else:
        lines = out.splitlines()
        assert lines[0] == view and lines[2].startswith("| ")
        table = [line for line in lines if line.startswith("|")]
        assert len(table) == 2 + len(expected)  # header, rule, one line a row


def test_after_a_run_where_everything_failed_report_points_at_the_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = tmp_path / "landing"
    for path in write_ct_series(landing, slices=2, rows=64, columns=64):
        path.write_bytes(path.read_bytes()[:-3000])  # every slice's pixel data cut short
    out = tmp_path / "out"
    assert main(["process", str(landing), "--out", str(out), *TIER_ARGS]) == 1
    capsys.readouterr()
    assert main(["report", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no rows yet" not in text
    assert "no rows: no instance compressed yet, and 4 unresolved failures" in text
    assert "4 unresolved failures: `dcmtier report --view failures` lists them" in text
    assert main(["report", "--out", str(out), "--view", "failures", "--json"]) == 0
    failures = _rows(capsys.readouterr().out)
    assert len(failures) == 4 and {f["tier"] for f in failures} == {"j2k-lossless", "j2k-r10"}
    assert main(["report", "--out", str(out), "--view", "all", "--json"]) == 0
    # every view is read; when everything failed only the failures view has rows
    assert [r["view"] for r in _rows(capsys.readouterr().out)] == ["failures"] * 4
