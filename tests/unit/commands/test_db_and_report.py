"""``dcmtier process`` records into the catalogue; ``dcmtier db`` and ``dcmtier report``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from dcmtier.catalogue import Catalogue
from dcmtier.catalogue.engine import ENV_URL
from dcmtier.catalogue.schema import head_revision
from dcmtier.cli import main
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


def test_db_current_and_downgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert main(["db", "current", *data]) == 0
    assert "revision none" in capsys.readouterr().out
    assert not (tmp_path / "catalogue.db").exists()
    assert main(["db", "upgrade", *data]) == 0
    assert main(["db", "downgrade", *data]) == 2  # a revision must be named
    assert main(["db", "downgrade", "base", *data]) == 0
    assert "revision none" in capsys.readouterr().out.splitlines()[-1]


def test_report_prints_markdown_tables_an_analyst_can_paste(
    processed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--data-dir", str(processed)]) == 0
    lines = [line.rstrip() for line in capsys.readouterr().out.splitlines() if line.strip()]
    savings = lines.index("savings_by_tier")
    assert lines[savings + 1].startswith("| tier ") and "| zip_bytes |" in lines[savings + 1]
    assert lines[savings + 3].startswith("| j2k-lossless |")
    quality_at = lines.index("quality_by_tier")
    lossless = lines[quality_at + 3].split("|")
    assert lossless[1].strip() == "j2k-lossless" and lossless[3].strip() == "inf"


def test_report_json_and_csv_carry_the_views(
    processed: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_URL, f"sqlite:///{processed}/catalogue.db")
    expected = Catalogue.connect(f"sqlite:///{processed}/catalogue.db").report()
    assert main(["report", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["savings_by_tier"] == expected["savings_by_tier"]
    lossless = got["quality_by_tier"][0]
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
    assert main(["report", "--data-dir", str(tmp_path)]) == 1
    assert "dcmtier db upgrade" in capsys.readouterr().err
