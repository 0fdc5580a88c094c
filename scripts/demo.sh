#!/usr/bin/env bash
# make demo: generate a sample CT study, run the unit of work over it into the default tiers,
# and show what each tier saved and cost in quality.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DCMTIER_DATA_DIR:-demo-data}
bin=.venv/bin
rm -rf "$data"
"$bin/dcmtier" sample "$data/landing" --slices 40
"$bin/dcmtier" process "$data/landing" --out "$data" --run-id demo
"$bin/python" - "$data" <<'PY'
import sys
import duckdb
root = sys.argv[1]
print(duckdb.sql(f"""
    SELECT tier, count(*) AS frames,
           round(sum(pixel_bytes_in) / sum(pixel_bytes_out), 1) AS pixel_ratio,
           round(min(psnr_db), 1) AS psnr_min, round(min(ssim), 4) AS ssim_min,
           max(max_abs_diff) AS max_abs_diff, round(avg(mean_abs_diff), 2) AS mean_abs_diff
    FROM read_parquet('{root}/quality/**/*.parquet', hive_partitioning = true,
                      hive_types = {{'tier': VARCHAR, 'study': VARCHAR}})
    GROUP BY tier ORDER BY pixel_ratio"""))
PY
