"""``dcmtier estimate``: its JSON Lines, and on a small landing area that the forecast brackets
what ``dcmtier process`` then stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcmtier.cli import main
from dcmtier.commands.estimate import project
from dcmtier.commands.trial import Measured, Trial
from dcmtier.discovery.sampling import StudyRecord, draw
from dcmtier.sample import write_mixed_landing

TIER_FIELDS = {"scope", "tier", "studies", "source_bytes", "stored_bytes", "stored_bytes_low",
               "stored_bytes_high", "cpu_hours"}  # fmt: skip
TOTAL_FIELDS = {"scope", "wall_s", "wall_s_dag", "task_instances", "metadata_bytes",
                "sample_studies"}  # fmt: skip


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_lines_are_per_tier_per_tier_and_modality_then_one_total() -> None:
    population = [StudyRecord(f"1.{n}", "DX" if n % 3 else "CT", 1 + 20 * (n % 3 == 0),
                              50_000 + 1000 * n) for n in range(30)]  # fmt: skip
    trial = Trial(header_files=10, header_s=0.01)
    for study in draw(population, 8, seed=0):
        trial.studies[study.uid] = Measured(
            wall_s=1.0, stored={"j2k-lossless": study.bytes // 2, "j2k-r20": study.bytes // 20},
            cpu_s={"j2k-lossless": 0.5, "j2k-r20": 0.7},
            tier_wall_s={"j2k-lossless": 0.6, "j2k-r20": 0.8},
        )  # fmt: skip
    lines = list(project(population, trial, ["j2k-lossless", "j2k-r20"], slots=2))
    assert [(x["scope"], x.get("tier"), x.get("modality")) for x in lines] == [
        ("tier", "j2k-lossless", None), ("modality", "j2k-lossless", "CT"),
        ("modality", "j2k-lossless", "DX"), ("tier", "j2k-r20", None),
        ("modality", "j2k-r20", "CT"), ("modality", "j2k-r20", "DX"), ("total", None, None),
    ]  # fmt: skip
    for line in lines[:-1]:
        assert set(line) >= TIER_FIELDS
        assert line["stored_bytes_low"] <= line["stored_bytes"] <= line["stored_bytes_high"]
    assert {k for x in lines if x["scope"] == "modality" for k in x} >= TIER_FIELDS | {"modality"}
    total = lines[-1]
    assert set(total) >= TOTAL_FIELDS
    assert total["sample_studies"] == 8 and total["studies"] == 30
    # stored bytes are exactly half the source bytes in every stratum: no sampling error
    assert lines[0]["stored_bytes"] == pytest.approx(sum(s.bytes for s in population) / 2, 1e-3)
    # one unit of 30 studies: discover, units, tiers, summary, one encode, two compress
    assert total["task_instances"] == 7 and total["metadata_bytes"] == 7 * 9500


@pytest.mark.slow
def test_the_estimate_brackets_what_process_stores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    write_mixed_landing(landing, 30, seed=3)
    tiers = ["--tier", "j2k-lossless", "--tier", "j2k-r20"]
    args = ["estimate", str(landing), "--out", str(out), *tiers, "--sample", "10", "--json"]
    assert main([*args, "--seed", "4"]) == 0
    lines = _lines(capsys.readouterr().out)
    forecast = {x["tier"]: x for x in lines if x["scope"] == "tier"}
    assert set(forecast) == {"j2k-lossless", "j2k-r20"}
    assert lines[-1]["scope"] == "total" and lines[-1]["sample_studies"] >= 10
    process = ["process", str(landing), "--out", str(out), *tiers, "--jobs", "1", "--json"]
    assert main(process) == 0
    capsys.readouterr()
    assert main(["estimate", "--check", "--out", str(out), "--json"]) == 0
    checks = {x["tier"]: x for x in _lines(capsys.readouterr().out)}
    for tier, line in forecast.items():
        done = checks[tier]["stored_bytes_done"]
        assert checks[tier]["studies_done"] == 30 and checks[tier]["inside"] == 1
        assert line["stored_bytes_low"] <= done <= line["stored_bytes_high"]
        assert abs(done / line["stored_bytes"] - 1) < 0.15
