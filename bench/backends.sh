#!/usr/bin/env bash
# SQLite vs PostgreSQL in the same run, and propagation across replicas.
#
#   bash bench/backends.sh
#   POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres DURATION=10s bash bench/backends.sh
#
# Per backend, against one server (wrk, 2 threads, 128 connections):
#   healthz, validate (no nonce: the cached hot path), validate with a unique
#   nonce (signed every time), show license (one database read each), extend
#   (one database write each; SQLite commits with synchronous=FULL).
# Then two replicas on PostgreSQL: N streams on B, changes through A.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-128}
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
WATCHERS=${WATCHERS:-1000}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --quiet -p tessera-cli -p tessera-bench
BIN=target/release/tessera
work=$(mktemp -d)
source bench/lib.sh
dbs=()
cleanup() {
  stop_servers
  for d in "${dbs[@]}"; do psql "$POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# new_db: creates a database, sets $pg to its URL (dropped on exit)
new_db() {
  local name="tessera_bench_$RANDOM$RANDOM"
  psql "$POSTGRES_URL" -qc "CREATE DATABASE $name" >/dev/null
  dbs+=("$name")
  pg="${POSTGRES_URL%/*}/$name"
}

rps() { # script path
  local out
  if [ -n "$2" ]; then out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$2" "$1"); else out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$1"); fi
  local errors; errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  printf '%s req/s, p99 %s, non-2xx %s' "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | awk '$1=="99%" {print $2}')" "${errors:-0}"
}

measure_backend() { # label url data-dir
  local label=$1 url=$2 data=$3
  local admin; admin=$(cat "$data/admin.key")
  local issued; issued=$(TESSERA_SERVER=$url TESSERA_ADMIN_KEY=$admin $BIN license issue --customer Bench --plan p --duration 365d --json)
  local id token
  id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["license"]["id"])' "$issued")
  token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$issued")
  post_script "$work/validate.lua" '{"token":"'"$token"'","instance_id":"bench-1"}'
  nonce_script "$work/nonce.lua" "$token"
  cat >"$work/show.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $admin"
LUA
  admin_post_script "$work/extend.lua" "$admin" '{"by":"1s"}'
  wrk -t2 -c"$CONNECTIONS" -d3s -s "$work/validate.lua" "$url/v1/validate" >/dev/null
  echo "-- $label"
  echo "healthz            $(rps "$url/healthz" "")"
  echo "validate           $(rps "$url/v1/validate" "$work/validate.lua")"
  echo "validate + nonce   $(rps "$url/v1/validate" "$work/nonce.lua")"
  echo "show license       $(rps "$url/v1/admin/licenses/$id" "$work/show.lua")"
  echo "extend (write)     $(rps "$url/v1/admin/licenses/$id/extend" "$work/extend.lua")"
}

echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores, $CONNECTIONS connections, $DURATION each"
start_server sqlite
measure_backend "SQLite" "$url" "$work/sqlite"
kill "$pid"
new_db
start_server pg --database-url "$pg"
measure_backend "PostgreSQL" "$url" "$work/pg"
kill "$pid"

echo "-- propagation across replicas (PostgreSQL, $WATCHERS streams on B, changes through A)"
new_db
key="$work/shared.key"
start_server a --database-url "$pg"
url_a=$url
cp "$work/a/signing.key" "$key"
start_server b --database-url "$pg" --signing-key-file "$key"
url_b=$url
admin=$(cat "$work/a/admin.key")
issued=$(TESSERA_SERVER=$url_a TESSERA_ADMIN_KEY=$admin $BIN license issue --customer Bench --plan p --duration 365d --json)
license=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["license"]["id"])' "$issued")
token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$issued")
TESSERA_ADMIN_KEY=$admin TESSERA_TOKEN=$token target/release/tessera-bench propagation \
  --watch-url "$url_b" --admin-url "$url_a" --license "$license" --watchers "$WATCHERS" --changes 10
