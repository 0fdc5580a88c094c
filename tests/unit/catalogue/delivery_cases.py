"""Viewer-check rows and what ``delivery_by_tier`` must make of them (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from dcmtier.catalogue import Catalogue
from dcmtier.catalogue.delivery import record_viewer_checks


def viewer_row(tier: str, viewer: str, decodable: bool, display: float | None) -> dict[str, Any]:
    """A row as ``dcmtier viewer-check`` makes it (plus a field the catalogue does not keep)."""
    return {
        "tier": tier, "viewer": viewer, "transfer_syntax": "1.2.840.10008.1.2.4.110",
        "codec": None, "decodable": decodable, "bit_exact": decodable, "max_abs_diff": 0.0,
        "frames": 8, "studies": 1, "study_frames": 8, "decode_ms_median": 10.0,
        "decode_ms_p95": 12.0, "package_bytes": 1_000_000, "download_s_100mbps": 0.08,
        "download_s_1gbps": 0.008, "display_s_100mbps": display,
        "display_s_1gbps": display and display - 0.072, "error": None, "ignored": "x",
    }  # fmt: skip


def check_delivery_view(url: str) -> None:
    """Record two checks of two tiers (the second replacing a first), read the view back."""
    record_viewer_checks(url, [viewer_row("jxl-lossless", "cornerstone-5.6.8", True, 9.0)])
    record_viewer_checks(url, [
        viewer_row("jxl-lossless", "cornerstone-5.6.8", False, None),
        viewer_row("jxl-lossless", "cornerstone-5.14.0", True, 0.9),
        viewer_row("jls-lossless", "cornerstone-5.6.8", True, 0.2),
        viewer_row("jls-lossless", "cornerstone-5.14.0", True, 0.3),
    ])  # fmt: skip
    catalogue = Catalogue.connect(url)
    try:
        with catalogue.engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT tier, package_bytes, download_s_100mbps, display_s_100mbps, "
                "decodable_by FROM delivery_by_tier ORDER BY tier"
            )).all()  # fmt: skip
            count = connection.execute(text("SELECT count(*) FROM viewer_checks")).scalar()
    finally:
        catalogue.close()
    assert count == 4
    assert [tuple(r) for r in rows] == [
        ("jls-lossless", 1_000_000, 0.08, 0.2, "cornerstone-5.14.0, cornerstone-5.6.8"),
        ("jxl-lossless", 1_000_000, 0.08, 0.9, "cornerstone-5.14.0"),
    ]
