"""The work items' helpers: a run's totals."""

from __future__ import annotations

from dcmtier.orchestration.items import summarise


def test_summary_totals_the_results() -> None:
    results = [
        {"study_uid": "1.2", "tier": "a", "status": "ok", "pixel_bytes_in": 100,
         "pixel_bytes_out": 10, "file_bytes_in": 120, "file_bytes_out": 30},
        {"study_uid": "1.2", "tier": "b", "status": "partial", "pixel_bytes_in": 100,
         "pixel_bytes_out": 40, "file_bytes_in": 120, "file_bytes_out": 60},
        None,
    ]  # fmt: skip
    totals = summarise(results)
    assert totals["statuses"] == {"ok": 1, "partial": 1}
    assert totals["finished"] == 2 and totals["studies"] == 1
    assert totals["pixel_ratio"] == 4.0
