#!/usr/bin/env bash
# make ui: Airflow's UI on this machine, with the embedded defaults (SQLite metadata, SQLite
# catalogue, LocalExecutor, local folders): `airflow standalone` (api-server, scheduler,
# dag-processor, triggerer) on the project's dags/ and plugins/, the demo study in
# demo-data/landing, and one run of dicom_archive_compression triggered on it, so that the DAG,
# its mapped study x tier tasks and a clear-and-retry can be tried in a browser.
#
#   scripts/ui.sh               start; Ctrl-C stops everything
#   scripts/ui.sh --no-trigger  start without triggering a run
#   scripts/ui.sh --check       say what would start and check the prerequisites; start nothing
#   scripts/ui.sh --stop        stop a UI started from another shell
#
# Environment: DCMTIER_UI_PORT (8080), DEMO_SLICES (40), DCMTIER_DEMO_DIR (./demo-data),
# DCMTIER_VENV (./.venv). Sign-in: every visitor is an admin (Airflow's simple auth manager,
# all-admins mode; the server listens on 127.0.0.1 only). With
# AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False the user is admin and the password is
# the one Airflow generates into demo-data/airflow-ui/simple_auth_manager_passwords.json.generated.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo=${DCMTIER_DEMO_DIR:-$root/demo-data}
venv=${DCMTIER_VENV:-$root/.venv}
port=${DCMTIER_UI_PORT:-8080}
slices=${DEMO_SLICES:-40}
url=http://127.0.0.1:$port
dag=dicom_archive_compression

mode=start
trigger=true
for arg in "$@"; do
  case "$arg" in
    --check) mode=check ;;
    --stop) mode=stop ;;
    --no-trigger) trigger=false ;;
    -h|--help) sed -n '2,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "ui.sh: unknown option $arg (--check, --stop, --no-trigger, --help)" >&2; exit 2 ;;
  esac
done

export PATH="$venv/bin:$PATH"  # standalone starts each component as `airflow ...`
export AIRFLOW_HOME=$demo/airflow-ui
export AIRFLOW__CORE__DAGS_FOLDER=$root/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$root/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS:-True}
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$url/execution/
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$port
export AIRFLOW__API__BASE_URL=$url
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
export AIRFLOW__CORE__PARALLELISM=4  # the pool `dcmtier` runs 4 at once; LocalExecutor starts this many workers
export DCMTIER_LANDING=$demo/landing
export DCMTIER_DATA_DIR=$demo/ui-output
export DCMTIER_JOBS=${DCMTIER_JOBS:-1}  # processes inside each study x tier task
unset DCMTIER_CATALOGUE_URL
pidfile=$AIRFLOW_HOME/standalone.pid
log=$AIRFLOW_HOME/standalone.log
passwords=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated

all_admins() { [ "$(echo "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS" | tr '[:upper:]' '[:lower:]')" = true ]; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if [ "$mode" = stop ]; then
  if [ ! -s "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "no Airflow UI running from $AIRFLOW_HOME"
    exit 0
  fi
  pid=$(cat "$pidfile")
  kill -INT "$pid"  # as Ctrl-C: scripts/standalone.py stops every component
  for _ in $(seq 90); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then echo "Airflow UI (pid $pid) still stopping; see $log"; exit 1; fi
  echo "Airflow UI stopped"
  exit 0
fi

problems=()
[ -x "$venv/bin/airflow" ] || problems+=("no $venv/bin/airflow: run make install first")
port_busy && problems+=("port $port is in use: stop what listens there or set DCMTIER_UI_PORT")
if [ "$mode" = check ]; then
  echo "would start: airflow standalone (api-server, scheduler, dag-processor, triggerer) at $url"
  echo "  DAGs $AIRFLOW__CORE__DAGS_FOLDER, plugins $AIRFLOW__CORE__PLUGINS_FOLDER"
  echo "  Airflow home $AIRFLOW_HOME (SQLite metadata), landing $DCMTIER_LANDING, output $DCMTIER_DATA_DIR"
  if all_admins; then echo "  sign-in: none (every visitor is an admin)"; else echo "  sign-in: admin, password in $passwords"; fi
  for problem in "${problems[@]}"; do echo "problem: $problem"; done
  [ ${#problems[@]} -eq 0 ]
  exit
fi
if [ ${#problems[@]} -gt 0 ]; then
  printf 'make ui: %s\n' "${problems[@]}" >&2
  exit 1
fi

mkdir -p "$AIRFLOW_HOME" "$DCMTIER_DATA_DIR"
if ! compgen -G "$DCMTIER_LANDING/*.dcm" >/dev/null; then
  echo "== generating the demo study ($slices CT slices) in $DCMTIER_LANDING"
  "$venv/bin/dcmtier" sample "$DCMTIER_LANDING" --slices "$slices" >/dev/null
fi
# the same signing key for every component (each would make its own otherwise)
[ -s "$AIRFLOW_HOME/jwt_secret" ] || "$venv/bin/python" -c "import secrets; print(secrets.token_hex(32))" > "$AIRFLOW_HOME/jwt_secret"
AIRFLOW__API_AUTH__JWT_SECRET=$(cat "$AIRFLOW_HOME/jwt_secret")
export AIRFLOW__API_AUTH__JWT_SECRET
echo "== preparing Airflow in $AIRFLOW_HOME (log: $log)"
airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
airflow pools set dcmtier 4 "dcmtier compression" > /dev/null

token() {
  if all_admins; then
    curl -sf "$url/auth/token"
  else
    curl -sf -X POST "$url/auth/token" -H 'Content-Type: application/json' \
      -d "{\"username\": \"admin\", \"password\": \"$(password)\"}"
  fi | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
password() { "$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$passwords"; }

announce() {  # runs beside standalone: waits until the UI answers, triggers a run, says where
  for _ in $(seq 300); do
    curl -sf "$url/api/v2/monitor/health" >/dev/null 2>&1 && break
    sleep 1
  done
  local bearer
  bearer=$(token) || { echo "make ui: the api-server did not answer at $url (log: $log)" >&2; return; }
  for _ in $(seq 120); do
    curl -sf -H "Authorization: Bearer $bearer" "$url/api/v2/dags/$dag" >/dev/null && break
    sleep 1
  done
  local triggered="no run triggered (--no-trigger): trigger $dag with settle_seconds 0"
  if $trigger; then
    curl -sf -X POST -H "Authorization: Bearer $bearer" -H 'Content-Type: application/json' \
      "$url/api/v2/dags/$dag/dagRuns" \
      -d '{"logical_date": null, "conf": {"settle_seconds": 0}}' >/dev/null \
      && triggered="one run of $dag triggered on the demo study (settle_seconds 0)" \
      || triggered="could not trigger a run: see $log"
  fi
  echo
  echo "Airflow UI: $url/dags/$dag"
  if all_admins; then
    echo "Sign-in: none: every visitor is an admin (simple auth manager, all admins; 127.0.0.1 only)"
  else
    echo "Sign-in: user admin, password $(password) (from $passwords)"
  fi
  echo "$triggered"
  echo "Landing $DCMTIER_LANDING, outputs and catalogue in $DCMTIER_DATA_DIR"
  echo "Stop: Ctrl-C here, or make ui-stop from another shell (log: $log)"
}

announce &
helper=$!
trap 'kill "$helper" 2>/dev/null || true' EXIT
echo "== starting Airflow at $url (takes a minute or two)"
# in the foreground: Ctrl-C reaches the supervisor, which stops standalone and all it started
"$venv/bin/python" scripts/standalone.py "$pidfile" "$log" || true
echo "== Airflow stopped"
