#!/usr/bin/env bash
# The clients of every language measured the same way (issue 16), in one
# run against one release server on SQLite: `has_feature` (median of
# batches, loop included; Java after a warm-up), verification of the
# authority's document (median of batches), and the propagation of an
# extension to N clients of one license (one process per language), from
# the admin API's answer to each client's published verdict (p50/p99 over
# N × ROUNDS deliveries).
#
#   bash bench/clients.sh
#   CLIENTS=100 ROUNDS=5 LANGUAGES="rust python node java" bash bench/clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_setup 1s 1
CLIENTS=${CLIENTS:-100}
ROUNDS=${ROUNDS:-5}
LANGUAGES=${LANGUAGES:-rust python node java}
cargo build --release --quiet -p tessera-bench
bash clients/java/build.sh >/dev/null
venv=${TMPDIR:-/tmp}/tessera-python-venv
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check ./clients/python

start_server data --max-instances-per-license 0
export TESSERA_SERVER=$url TESSERA_DATA_DIR=$work/data
export URL=$url ADMIN_KEY=$(cat "$work/data/admin.key") CLIENTS ROUNDS
export PUBLIC_KEY=$(sed -n 's/.*public key: *//p' "$work/data.out" | head -1)
echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores, SQLite; $CLIENTS clients × $ROUNDS extensions per language"
for language in $LANGUAGES; do
  issued=$($BIN license issue --customer "Bench $language" --plan p --duration 365d --features sso,audit --json)
  export LICENSE=$(echo "$issued" | python3 -c 'import json,sys; print(json.load(sys.stdin)["license"]["id"])')
  export TOKEN=$(echo "$issued" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  case $language in
    rust) target/release/tessera-bench sdk --url "$URL" --public-key "$PUBLIC_KEY" --license "$LICENSE" \
            --admin-key "$ADMIN_KEY" --token "$TOKEN" \
            --clients "$CLIENTS" --rounds "$ROUNDS" ;;
    python) "$venv/bin/python" bench/clients/bench_client.py ;;
    node) node bench/clients/bench-client.mjs ;;
    java) java -cp clients/java/build/tessera-client.jar bench/clients/ClientBench.java ;;
    *) echo "unknown language $language" >&2; exit 2 ;;
  esac | grep '^RESULT'
done
