#!/usr/bin/env bash
# Propagation of a license change to N open change streams, and the server's
# memory per stream. Server and load generator share this machine.
#
#   bash bench/propagation.sh              # 1,000 and 10,000 watchers
#   WATCHERS="1000" CHANGES=10 bash bench/propagation.sh
#   MACHINES=1 WATCHERS=1000 bash bench/propagation.sh   # + machine releases
#
# With MACHINES=1 the license counts machines (node-locked): the same
# streams then also time releases (admin API) to the announcement each
# stream receives, after the license changes, in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
WATCHERS=${WATCHERS:-"1000 10000"}
CHANGES=${CHANGES:-5}
# Each stream is one socket in each process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "fd limit: $(ulimit -n)"

cargo build --release --quiet -p tessera-cli -p tessera-bench
BIN=target/release/tessera
work=$(mktemp -d)
source bench/lib.sh
trap 'stop_servers; rm -rf "$work"' EXIT

for n in $WATCHERS; do
  rm -rf "$work/data"
  MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-} start_server data
  machine_args=() release=()
  if [ -n "${MACHINES:-}" ]; then machine_args=(--max-machines 1000); release=(--release-machines); fi
  issued=$(TESSERA_SERVER=$url TESSERA_DATA_DIR=$work/data $BIN license issue --customer Bench --plan p --duration 365d --json "${machine_args[@]}")
  license=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["license"]["id"])' "$issued")
  token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$issued")
  echo "== $n watchers"
  TESSERA_ADMIN_KEY=$(cat "$work/data/admin.key") TESSERA_TOKEN=$token target/release/tessera-bench propagation \
    --watch-url "$url" --admin-url "$url" --license "$license" \
    --watchers "$n" --changes "$CHANGES" --server-pid "$pid" "${release[@]}"
  kill $pid; wait $pid 2>/dev/null || true
done
