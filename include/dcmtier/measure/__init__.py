"""The measure stage: per-frame quality metrics and gates, and the Parquet quality dataset.

- ``metrics``: MSE, PSNR, SSIM, pixel match, max/mean difference in modality units, the gates;
- ``store``: the hive-partitioned Parquet dataset (``quality/tier=…/study=…``).

May import: ``dcmtier.records``, ``dcmtier.tiers``, ``dcmtier.errors``.
"""
