#!/usr/bin/env bash
# make demo: generate a sample CT study and compress it into the default tiers.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DCMTIER_DATA_DIR:-demo-data}
bin=.venv/bin
rm -rf "$data"
"$bin/dcmtier" sample "$data/landing" --slices 40
"$bin/dcmtier" compress "$data/landing" --out "$data/derived"
