"""The overview's tier table holds the analysts' views' figures, not figures of its own."""

from __future__ import annotations

from pathlib import Path

from dcmtier.catalogue import Catalogue
from dcmtier.ui import queries

SAVINGS = ("studies", "instances", "original_bytes", "compressed_bytes", "ratio", "zip_bytes")
QUALITY = ("frames", "psnr_min", "psnr_median", "ssim_min", "ssim_mean", "max_abs_diff")


def test_the_tier_figures_are_the_views_rows(processed: Path) -> None:
    catalogue = Catalogue.connect(f"sqlite:///{processed / 'catalogue.db'}")
    try:
        views = catalogue.report(("savings_by_tier", "quality_by_tier"))
        with catalogue.engine.connect() as connection:
            tiers = {row.tier: row for row in queries.figures(connection).tiers}
    finally:
        catalogue.close()
    savings = {row["tier"]: row for row in views["savings_by_tier"]}
    quality = {row["tier"]: row for row in views["quality_by_tier"]}
    assert set(tiers) == set(savings) == set(quality) == {"j2k-lossless", "j2k-r20"}
    for name, row in tiers.items():
        assert {c: getattr(row, c) for c in SAVINGS} == {c: savings[name][c] for c in SAVINGS}
        assert {c: getattr(row, c) for c in QUALITY} == {c: quality[name][c] for c in QUALITY}
        assert row.frames > 0 and row.instances > 0
        assert row.gate_passed + row.gate_failed == row.instances
    lossless, lossy = tiers["j2k-lossless"].pixel_ratio, tiers["j2k-r20"].pixel_ratio
    assert lossless is not None and lossy is not None
    assert lossy > lossless > 1.0
