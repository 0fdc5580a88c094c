#!/usr/bin/env bash
# make demo: the whole pipeline on a newcomer's machine with the embedded defaults. It generates
# a sample CT study into a local landing folder, runs the Airflow DAG end to end (SQLite Airflow
# metadata, SQLite catalogue, local folders) and prints the savings and quality tables.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo=${DCMTIER_DEMO_DIR:-$root/demo-data}
bin=$root/.venv/bin
slices=${DEMO_SLICES:-40}

export AIRFLOW_HOME=$demo/airflow
export AIRFLOW__CORE__DAGS_FOLDER=$root/dags
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export DCMTIER_LANDING=$demo/landing
export DCMTIER_DATA_DIR=$demo/output
export DCMTIER_JOBS=${DCMTIER_JOBS:-2}   # processes inside each study x tier task
unset DCMTIER_CATALOGUE_URL

rm -rf "$demo"
mkdir -p "$AIRFLOW_HOME" "$DCMTIER_DATA_DIR"
echo "== generating a ${slices}-slice CT study in $DCMTIER_LANDING"
"$bin/dcmtier" sample "$DCMTIER_LANDING" --slices "$slices"
echo "== preparing Airflow (SQLite metadata in $AIRFLOW_HOME)"
"$bin/airflow" db migrate > "$demo/airflow-db-migrate.log" 2>&1
"$bin/airflow" pools set dcmtier 4 "dcmtier compression" > /dev/null
echo "== running the DAG dicom_archive_compression (log: $demo/dag-test.log)"
start=$(date +%s)
"$bin/airflow" dags test dicom_archive_compression \
  --conf '{"settle_seconds": 0}' > "$demo/dag-test.log" 2>&1 \
  || { tail -40 "$demo/dag-test.log"; exit 1; }
grep -o "DagRun Finished: dag_id=[a-z_]*\|run_duration=[0-9.]*, state=[a-z]*" "$demo/dag-test.log" \
  | tail -2 | paste -sd' ' || true
echo "== the DAG took $(( $(date +%s) - start )) s; the catalogue says:"
"$bin/dcmtier" report --out "$DCMTIER_DATA_DIR"   # the DAG's output root and its catalogue.db
# what is there (quarantine/ appears only when an instance failed)
echo "== outputs under $DCMTIER_DATA_DIR: $(cd "$DCMTIER_DATA_DIR" && ls -d -- */ ./*.db 2>/dev/null | sed 's|^\./||' | paste -sd' ')"
# cache/layered/ and cache/sources/ are the study caches' home: the summary task drops the
# study's entries once its tiers are done, the folders stay (a run overlapping this one may be
# writing into them); files are left only for a failed tier, for its retry
if [ -d "$DCMTIER_DATA_DIR/cache" ]; then
  cached=$(find "$DCMTIER_DATA_DIR/cache" -type f | wc -l)
  if [ "$cached" -eq 0 ]; then
    echo "   cache/layered/ and cache/sources/ are empty: the DAG dropped the study's layered" \
      "codestreams and sources once its tiers were done; the folders stay for its next run"
  else
    echo "   cache/ keeps $cached files for a failed tier's retry;" \
      "\`dcmtier cache prune --out $DCMTIER_DATA_DIR\` deletes them"
  fi
fi
