#!/usr/bin/env bash
# Propagation of a license change to N open change streams, and the server's
# memory per stream. Server and load generator share this machine.
#
#   bash bench/propagation.sh              # 1,000 and 10,000 watchers
#   WATCHERS="1000" CHANGES=10 bash bench/propagation.sh
#   MACHINES=1 WATCHERS=1000 bash bench/propagation.sh   # + machine releases
#   BIN=/path/to/tessera BENCH=/path/to/tessera-bench bash bench/propagation.sh
#   WATCHERS=100000 SOURCES=50 IDLE_SECONDS=30 bash bench/propagation.sh
#
# SOURCES=N spreads the streams over N loopback source addresses (one has
# about 28,000 ports towards the server); IDLE_SECONDS=N also measures the
# server's CPU over N seconds with every stream open and nothing changing.
# Past 11,000 streams the server's per-address and total stream limits are
# raised for the run (--max-streams and friends), and the descriptor limit
# to fit.
#
# With MACHINES=1 the license counts machines (node-locked): the same
# streams then also time releases (admin API) to the announcement each
# stream receives, after the license changes, in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
WATCHERS=${WATCHERS:-"1000 10000"}
CHANGES=${CHANGES:-5}
# Each stream is one socket in each process.
max_n=$(printf '%s\n' $WATCHERS | sort -n | tail -1)
if [ "$(ulimit -Hn)" -lt $(( max_n + 1000 )) ]; then ulimit -Hn $(( max_n + 1000 )) 2>/dev/null || true; fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "fd limit: $(ulimit -n)"

if [ -z "${BIN:-}" ] || [ -z "${BENCH:-}" ]; then
  cargo build --release --quiet -p tessera-cli -p tessera-bench
  BIN=${BIN:-target/release/tessera} BENCH=${BENCH:-target/release/tessera-bench}
fi
work=$(mktemp -d)
source bench/lib.sh
trap 'stop_servers; rm -rf "$work"' EXIT

for n in $WATCHERS; do
  rm -rf "$work/data"
  limits=()
  if [ "$n" -gt 11000 ]; then
    limits=(--max-streams "$n" --max-streams-per-license "$n" --max-connections $(( n + 1000 )))
  fi
  MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-} start_server data "${limits[@]}"
  machine_args=() release=()
  if [ -n "${MACHINES:-}" ]; then machine_args=(--max-machines 1000); release=(--release-machines); fi
  issued=$(TESSERA_SERVER=$url TESSERA_DATA_DIR=$work/data $BIN license issue --customer Bench --plan p --duration 365d --json "${machine_args[@]}")
  license=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["license"]["id"])' "$issued")
  token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$issued")
  echo "== $n watchers"
  TESSERA_ADMIN_KEY=$(cat "$work/data/admin.key") TESSERA_TOKEN=$token $BENCH propagation \
    --watch-url "$url" --admin-url "$url" --license "$license" \
    --watchers "$n" --changes "$CHANGES" --server-pid "$pid" "${release[@]}" \
    --sources "${SOURCES:-0}" --idle-seconds "${IDLE_SECONDS:-0}"
  kill $pid; wait $pid 2>/dev/null || true
done
