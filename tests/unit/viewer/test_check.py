"""``dcmtier viewer-check`` on real outputs, with the viewers' real codecs in Node.js."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dcmtier.cli import main
from tests.unit.viewer.conftest import CT_TIERS, SIGNED_TIERS

OHIF, LATEST = "cornerstone-5.6.8", "cornerstone-5.14.0"
LOSSLESS = {"j2k-lossless", "htj2k-lossless", "jls-lossless", "jxl-lossless"}


def _rows(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[tuple[str, str], Any]:
    assert main(["viewer-check", *argv, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return {(r["tier"], r["viewer"]): r for r in rows}


def test_each_tier_and_viewer_has_a_row_with_the_issues_fields(
    viewer_codecs: None, ct_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows(capsys, str(ct_out))
    assert set(rows) == {(t, v) for t in CT_TIERS for v in (OHIF, LATEST)}
    for (tier, _), row in rows.items():
        assert {"decodable", "bit_exact", "max_abs_diff", "decode_ms_median", "decode_ms_p95",
                "frames", "package_bytes", "download_s_100mbps", "download_s_1gbps",
                "display_s_100mbps"} <= set(row)  # fmt: skip
        assert row["frames"] == 2 and row["study_frames"] == 2
        zip_bytes = (ct_out / "packages").glob(f"*/{tier}.zip")
        assert row["package_bytes"] == next(zip_bytes).stat().st_size
        assert row["download_s_100mbps"] == round(row["package_bytes"] * 8 / 1e8, 4)
        assert row["download_s_1gbps"] == round(row["package_bytes"] * 8 / 1e9, 4)


def test_ohifs_cornerstone_decodes_every_tier_but_jpeg_xl_and_lossless_comes_out_exact(
    viewer_codecs: None, ct_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows(capsys, str(ct_out))
    for tier in CT_TIERS:
        ohif, latest = rows[(tier, OHIF)], rows[(tier, LATEST)]
        assert latest["decodable"] is True, latest
        if tier == "jxl-lossless":
            assert ohif["decodable"] is False and ohif["bit_exact"] is False
            assert ohif["error"] == "no decoder for transfer syntax 1.2.840.10008.1.2.4.110"
            assert ohif["decode_ms_median"] is None and ohif["display_s_100mbps"] is None
            assert latest["codec"] == "@cornerstonejs/codec-libjxl@1.1.1"
        else:
            assert ohif["decodable"] is True, ohif
        for row in (ohif, latest):
            if not row["decodable"]:
                continue
            assert row["decode_ms_median"] > 0
            assert row["decode_ms_p95"] >= row["decode_ms_median"]
            display = row["download_s_100mbps"] + 2 * row["decode_ms_median"] / 1000
            assert row["display_s_100mbps"] == pytest.approx(display, abs=1e-3)
            if tier in LOSSLESS:
                assert row["bit_exact"] is True and row["max_abs_diff"] == 0
            else:
                assert row["bit_exact"] is None and row["max_abs_diff"] > 0
    assert rows[("jls-near2", OHIF)]["max_abs_diff"] <= 2  # NEAR=2 holds through the viewer
    assert rows[("j2k-lossless", OHIF)]["codec"] == "@cornerstonejs/codec-openjpeg@1.3.0"
    assert rows[("htj2k-lossless", LATEST)]["codec"] == "@cornerstonejs/codec-openjph@2.4.11"


def test_signed_16_bit_ct_comes_out_exact_in_both_viewers(
    viewer_codecs: None, signed_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows(capsys, str(signed_out))
    for tier in SIGNED_TIERS:
        assert rows[(tier, LATEST)]["bit_exact"] is True, rows[(tier, LATEST)]
        assert rows[(tier, LATEST)]["max_abs_diff"] == 0
        if tier != "jxl-lossless":
            assert rows[(tier, OHIF)]["bit_exact"] is True, rows[(tier, OHIF)]


def test_tiers_and_frames_narrow_the_check_and_no_catalogue_leaves_the_source_diff_null(
    viewer_codecs: None, ct_out: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows = _rows(capsys, str(ct_out), "--tier", "jls-lossless", "--frames", "1")
    assert set(rows) == {("jls-lossless", OHIF), ("jls-lossless", LATEST)}
    assert all(r["frames"] == 1 and r["study_frames"] == 2 for r in rows.values())
    copy = tmp_path / "no-catalogue"
    (copy / "derived").mkdir(parents=True)
    for path in (ct_out / "derived" / "jls-lossless").rglob("*.dcm"):
        target = copy / path.relative_to(ct_out)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    rows = _rows(capsys, str(copy))
    row = rows[("jls-lossless", OHIF)]
    assert row["bit_exact"] is True and row["max_abs_diff"] is None
    assert row["package_bytes"] is None and row["download_s_100mbps"] is None


def test_an_output_root_on_a_store_is_read_the_same_way(
    viewer_codecs: None, ct_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dcmtier.storage.store import Store

    store = Store.open("memory://dcmtier-test-viewer/out")
    for path in ct_out.rglob("*"):
        if path.is_file() and path.parts[-1] != "catalogue.db" and "quality" not in path.parts:
            store.write_bytes(str(path.relative_to(ct_out)), path.read_bytes())
    catalogue = f"sqlite:///{ct_out / 'catalogue.db'}"
    remote = _rows(capsys, store.url, "--tier", "htj2k-r20", "--catalogue", catalogue)
    local = _rows(capsys, str(ct_out), "--tier", "htj2k-r20")
    for key, row in remote.items():
        for field in ("decodable", "max_abs_diff", "package_bytes", "frames", "transfer_syntax"):
            assert row[field] == local[key][field], field


def test_an_empty_root_says_so_and_an_unknown_tier_is_a_usage_error(
    viewer_codecs: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["viewer-check", str(tmp_path)]) == 0
    assert "no tier outputs" in capsys.readouterr().out
    assert main(["viewer-check", str(tmp_path), "--tier", "nope"]) == 2


def test_record_keeps_the_rows_in_the_catalogue_and_the_view_sums_them_up(
    viewer_codecs: None, ct_out: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sqlite3

    rows = _rows(capsys, str(ct_out), "--tier", "jxl-lossless", "--tier", "jls-near2",
                 "--frames", "1", "--record")  # fmt: skip
    with sqlite3.connect(ct_out / "catalogue.db") as db:
        view = {r[0]: r[1:] for r in db.execute(
            "SELECT tier, package_bytes, download_s_100mbps, display_s_100mbps, decodable_by "
            "FROM delivery_by_tier")}  # fmt: skip
        stored = db.execute("SELECT tier, viewer, decodable FROM viewer_checks").fetchall()
    assert {(t, v) for t, v, _ in stored} == set(rows)
    assert view["jxl-lossless"][3] == LATEST
    assert view["jls-near2"][3] == f"{LATEST}, {OHIF}"
    for tier in ("jxl-lossless", "jls-near2"):
        latest = rows[(tier, LATEST)]
        assert view[tier][:2] == (latest["package_bytes"], latest["download_s_100mbps"])
    assert main(["viewer-check", str(tmp_path), "--record"]) == 2  # no catalogue there
    assert "--record: no catalogue" in capsys.readouterr().err
