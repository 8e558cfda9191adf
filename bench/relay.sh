#!/usr/bin/env bash
# A site relay's validations/s against the authority's, on this machine in
# one run (docs/PROTOCOL.md §26). Both sign every answer with Ed25519; the
# authority may reuse a signature for nonce-less requests of one instance
# (60 s), the relay signs each one. wrk, $CONNECTIONS connections.
#
#   bash bench/relay.sh
#   DURATION=30s bash bench/relay.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_setup 10s 128

start_server data
authority=$url
export TESSERA_SERVER=$url TESSERA_DATA_DIR=$work/data
key=$(sed -n 's/.*public key: *//p' "$work/data.out" | head -1)
issued=$($BIN license issue --customer Bench --plan enterprise --features a,b,c --duration 365d --json)
license=$(echo "$issued" | python3 -c 'import json,sys; print(json.load(sys.stdin)["license"]["id"])')
token=$(echo "$issued" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
relay_key=$($BIN relay init --data-dir "$work/relay" 2>/dev/null)
$BIN site create bench-site --relay-key "$relay_key" --license "$license" -o "$work/bundle.json" 2>/dev/null
env -u TESSERA_SERVER TESSERA_LOG=warn $BIN relay --data-dir "$work/relay" --listen 127.0.0.1:0 \
  --public-key "$key" --bundle "$work/bundle.json" >"$work/relay.out" 2>"$work/relay.err" &
pids+=("$!")
relay=$(wait_listening "$work/relay.out")
[ -n "$relay" ] || { cat "$work/relay.err" >&2; exit 1; }

post_script "$work/plain.lua" '{"token":"'"$token"'","instance_id":"bench-1","app_version":"1.0"}'
nonce_script "$work/nonce.lua" "$token"

echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores, $CONNECTIONS connections, $DURATION each"
for side in authority relay; do
  url=${!side}
  wrk -t2 -c"$CONNECTIONS" -d2s -s "$work/plain.lua" "$url/v1/validate" >/dev/null
  measure "$side-healthz" "" /healthz
  measure "$side-validate" "$work/plain.lua" /v1/validate
  measure "$side-validate-nonce" "$work/nonce.lua" /v1/validate
done
python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
r = lambda n: float(open(f"{d}/{n}.rps").read())
for n in ("healthz", "validate", "validate-nonce"):
    print(f"relay/authority {n:16s} {r('relay-' + n) / r('authority-' + n):5.2f}")
PY
