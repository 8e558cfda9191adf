#!/usr/bin/env bash
# Metered quotas (docs/PROTOCOL.md §22): 10,000 instances of one license,
# each sending one consumption report, absorbed by one server on SQLite
# (64 in flight); the authority's total is checked against what was sent.
#
#   bash bench/consumption.sh
#   INSTANCES=20000 CONCURRENCY=128 bash bench/consumption.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_setup 10s 64
INSTANCES=${INSTANCES:-10000}
CONCURRENCY=${CONCURRENCY:-64}
cargo build --release --quiet -p tessera-bench

start_server data --max-instances-per-license 0
export TESSERA_SERVER=$url TESSERA_DATA_DIR=$work/data
issued=$($BIN license issue --customer Bench --plan p --duration 365d \
  --features "api_calls=1000000000/month" --json)
license=$(echo "$issued" | python3 -c 'import json,sys; print(json.load(sys.stdin)["license"]["id"])')
token=$(echo "$issued" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores, SQLite"
target/release/tessera-bench consumption --url "$url" --admin-key "$(cat "$work/data/admin.key")" \
  --license "$license" --token "$token" --instances "$INSTANCES" --concurrency "$CONCURRENCY"
