"""The quality views' SQL, as each revision makes it: ``quality_by_tier`` (0002, 0007, 0013) and
the views grouped by series descriptors (0010, 0013).

Each revision that adds a column to the views makes them again with it; the text a revision
runs never changes once released (SQLite keeps it word for word), so each variant is a flag
here rather than a copy of the SQL per revision: ``fallback`` (0007: ``fallback_frames``) and
``ranged`` (0013: ``psnr_range_min``, ``ssim_range_min``, the worst frame's against its own
data range). The SQL runs on PostgreSQL and SQLite alike (0002): medians from ROW_NUMBER and
COUNT windows, sums cast to BIGINT.
"""

from __future__ import annotations

from collections.abc import Sequence

# 0007: frames recoded at a lower ratio to meet their gate
_FALLBACK_FRAMES = "CAST(SUM(CASE WHEN m.fell_back THEN 1 ELSE 0 END) AS BIGINT) AS fallback_frames"
# 0013: the worst frame's PSNR and SSIM against its own data range
_RANGED_FRAMES = "q.psnr_db_range, q.ssim_range"
_RANGE_MINIMA = (
    "MIN(m.psnr_db_range) AS psnr_range_min,\n       MIN(m.ssim_range) AS ssim_range_min"
)
_NEXT = ",\n       "  # the next column of a view's SELECT list


def quality_by_tier(*, fallback: bool = False, ranged: bool = False) -> str:
    """``CREATE VIEW quality_by_tier``: per tier, frames, PSNR (minimum, median), SSIM (minimum,
    mean), differences and gate failures; with ``fallback`` and ``ranged`` (above) as asked.

    The median of n sorted values is the mean of positions (n + 1) / 2 and (n + 2) / 2 in
    integer division: the same position when n is odd, the two middle ones when n is even.
    """
    measured = "q.psnr_db, q.ssim, q.max_abs_diff, q.mean_abs_diff"
    shown = "CAST(MIN(g.gate_failures) AS BIGINT) AS gate_failures"
    if fallback:
        measured += ", q.fell_back"
        shown += _NEXT + _FALLBACK_FRAMES
    if ranged:
        measured += f",\n           {_RANGED_FRAMES}"
        shown += _NEXT + _RANGE_MINIMA
    return f"""
CREATE VIEW quality_by_tier AS
WITH measured AS (
    SELECT d.tier AS tier, {measured}
    FROM frame_quality q
    JOIN derived_instances d ON d.id = q.derived_id
),
ranked AS (
    SELECT tier, psnr_db,
           ROW_NUMBER() OVER (PARTITION BY tier ORDER BY psnr_db) AS position,
           COUNT(*) OVER (PARTITION BY tier) AS n
    FROM measured
),
medians AS (
    SELECT tier, AVG(psnr_db) AS psnr_median
    FROM ranked
    WHERE position IN ((n + 1) / 2, (n + 2) / 2)
    GROUP BY tier
),
gates AS (
    SELECT tier, SUM(CASE WHEN gate_passed THEN 0 ELSE 1 END) AS gate_failures
    FROM derived_instances
    GROUP BY tier
)
SELECT m.tier AS tier,
       COUNT(*) AS frames,
       MIN(m.psnr_db) AS psnr_min,
       MIN(md.psnr_median) AS psnr_median,
       MIN(m.ssim) AS ssim_min,
       AVG(m.ssim) AS ssim_mean,
       MAX(m.max_abs_diff) AS max_abs_diff,
       AVG(m.mean_abs_diff) AS mean_abs_diff,
       {shown}
FROM measured m
JOIN medians md ON md.tier = m.tier
JOIN gates g ON g.tier = m.tier
GROUP BY m.tier
"""


def quality_view(name: str, keys: Sequence[str], *, ranged: bool = False) -> str:
    """``CREATE VIEW name``: quality_by_tier's columns (and ``ssim_median``) per ``keys`` x tier
    (0010, which has ``fallback_frames``); with ``ranged`` (0013) as asked."""
    picked = ", ".join(f"COALESCE(s.{k}, '') AS {k}" for k in keys)
    group = ", ".join((*keys, "tier"))
    on = " AND ".join(f"{{a}}.{k} = {{b}}.{k}" for k in (*keys, "tier"))
    shown = ", ".join(f"NULLIF(m.{k}, '') AS {k}" for k in keys)
    measured = f", {_RANGED_FRAMES}" if ranged else ""
    last = _NEXT + _RANGE_MINIMA if ranged else ""
    return f"""
CREATE VIEW {name} AS
WITH measured AS (
    SELECT {picked}, d.tier AS tier, q.psnr_db, q.ssim, q.max_abs_diff, q.mean_abs_diff,
           q.fell_back{measured}
    FROM frame_quality q
    JOIN derived_instances d ON d.id = q.derived_id
    JOIN instances i ON i.sop_uid = d.source_sop_uid
    JOIN series s ON s.series_uid = i.series_uid
),
psnr AS (
    SELECT {group}, psnr_db AS value,
           ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY psnr_db) AS position,
           COUNT(*) OVER (PARTITION BY {group}) AS n
    FROM measured
),
ssim AS (
    SELECT {group}, ssim AS value,
           ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY ssim) AS position,
           COUNT(*) OVER (PARTITION BY {group}) AS n
    FROM measured WHERE ssim IS NOT NULL
),
psnr_medians AS (
    SELECT {group}, AVG(value) AS median FROM psnr
    WHERE position IN ((n + 1) / 2, (n + 2) / 2) GROUP BY {group}
),
ssim_medians AS (
    SELECT {group}, AVG(value) AS median FROM ssim
    WHERE position IN ((n + 1) / 2, (n + 2) / 2) GROUP BY {group}
),
gates AS (
    SELECT {picked}, d.tier AS tier,
           SUM(CASE WHEN d.gate_passed THEN 0 ELSE 1 END) AS gate_failures
    FROM derived_instances d
    JOIN instances i ON i.sop_uid = d.source_sop_uid
    JOIN series s ON s.series_uid = i.series_uid
    GROUP BY {", ".join(f"COALESCE(s.{k}, '')" for k in keys)}, d.tier
)
SELECT {shown},
       m.tier AS tier,
       COUNT(*) AS frames,
       MIN(m.psnr_db) AS psnr_min,
       MIN(pm.median) AS psnr_median,
       MIN(m.ssim) AS ssim_min,
       AVG(m.ssim) AS ssim_mean,
       MIN(sm.median) AS ssim_median,
       MAX(m.max_abs_diff) AS max_abs_diff,
       AVG(m.mean_abs_diff) AS mean_abs_diff,
       CAST(MIN(g.gate_failures) AS BIGINT) AS gate_failures,
       {_FALLBACK_FRAMES}{last}
FROM measured m
JOIN psnr_medians pm ON {on.format(a="pm", b="m")}
JOIN gates g ON {on.format(a="g", b="m")}
LEFT JOIN ssim_medians sm ON {on.format(a="sm", b="m")}
GROUP BY {", ".join(f"m.{k}" for k in (*keys, "tier"))}
"""
