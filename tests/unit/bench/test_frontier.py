"""`dcmtier bench --frontier`: per codec family and bound, and the choosing tier (issue #27)."""

from __future__ import annotations

import pytest

from dcmtier.bench.frontier import BOUNDS, CHOSEN_LABEL, format_table, measure_frontier
from tests.unit.work.frontier_cases import write_case


@pytest.fixture(scope="module")
def frontier(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    files = write_case(tmp_path_factory.mktemp("frontier"), "signed", slices=2, size=48)
    return measure_frontier(files)


def test_each_bound_has_every_family_and_the_choice(frontier: dict[str, object]) -> None:
    bounds = frontier["bounds"]
    assert isinstance(bounds, dict) and set(bounds) == {str(b) for b in BOUNDS}
    assert set(bounds["0"]) == {"j2k", "htj2k", "jls", "jxl", CHOSEN_LABEL}
    assert set(bounds["20"]) == {"j2k", "htj2k", "jls", "jxl", CHOSEN_LABEL}


def test_every_row_meets_its_bound_and_the_choice_is_the_smallest(
    frontier: dict[str, object],
) -> None:
    bounds = frontier["bounds"]
    assert isinstance(bounds, dict)
    for bound, rows in bounds.items():
        for label, row in rows.items():
            assert row["max_abs_diff"] <= float(bound), (bound, label)
            assert row["encode_ms"] > 0 and row["decode_ms"] >= 0
        chosen = rows[CHOSEN_LABEL]["bytes"]
        assert chosen <= min(row["bytes"] for label, row in rows.items() if label != CHOSEN_LABEL)
        assert sum(rows[CHOSEN_LABEL]["chosen"].values()) == 2  # one codec per instance
    assert bounds["0"]["j2k"]["rmse"] == 0 and bounds["20"]["jls"]["rmse"] > 0


def test_the_table_has_a_line_per_row(frontier: dict[str, object]) -> None:
    lines = format_table("sample", frontier)
    assert lines[0] == "sample (2 files)"
    assert len(lines) == 2 + 5 + 3 * 5
    assert any(line.split()[:2] == ["20", "chosen"] for line in lines)


def test_the_command_offers_the_frontier(capsys: pytest.CaptureFixture[str]) -> None:
    from dcmtier.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "--frontier" in capsys.readouterr().out
