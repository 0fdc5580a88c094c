"""The rate-distortion chart draws one line per codec; a choosing tier's is its own (#27)."""

from __future__ import annotations

from dcmtier.ui.pages import rd_chart
from dcmtier.ui.queries import TierRow


def test_choosing_tiers_get_their_own_line_beside_the_codecs() -> None:
    rows = [
        TierRow("j2k-r10", pixel_ratio=10.0, psnr_median=50.0),
        TierRow("jls-maxerr20", pixel_ratio=11.0, psnr_median=48.0),
        TierRow("maxerr20", pixel_ratio=11.0, psnr_median=48.0),
        TierRow("best-lossless", pixel_ratio=3.3, psnr_median=float("inf")),
    ]
    svg = rd_chart(rows, "psnr")
    assert "codec chosen per instance (this archive)" in svg
    assert "jls (this archive)" in svg and "j2k (this archive)" in svg
    assert "auto (this archive)" not in svg
