#!/usr/bin/env bash
# The Keygen-compatible API's validate-key against Tessera's own
# POST /v1/validate, same server, same run (wrk, 256 connections). Every
# Keygen answer is signed anew (Keygen-Signature covers its Date); so is a
# Tessera answer to a request with a nonce, while one without reuses the
# signed document of (license, revision, instance).
#
#   bash bench/keygen.sh
#   DURATION=30s BIN=/path/to/tessera bash bench/keygen.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_setup 15s 256

start_server data
token=$(bench_license)

post_script "$work/plain.lua" '{"token":"'"$token"'","instance_id":"bench-1"}'
nonce_script "$work/nonce.lua" "$token"
cat >"$work/keygen.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/vnd.api+json"
wrk.headers["Accept"] = "application/vnd.api+json"
wrk.body = '{"meta":{"key":"$token","scope":{"product":"default"}}}'
LUA
cat >"$work/keygen-nonce.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"meta":{"key":"$token","nonce":%d,"scope":{"product":"default"}}}', n)
  return wrk.format("POST", "/v1/licenses/actions/validate-key",
    {["Content-Type"] = "application/vnd.api+json", ["Accept"] = "application/vnd.api+json"}, body)
end
LUA

wrk -t2 -c"$CONNECTIONS" -d3s -s "$work/keygen.lua" "$url/v1/licenses/actions/validate-key" >/dev/null

echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores, $CONNECTIONS connections, $DURATION each"
measure healthz "" /healthz
measure validate "$work/plain.lua" /v1/validate
measure validate-nonce "$work/nonce.lua" /v1/validate
measure keygen-validate-key "$work/keygen.lua" /v1/licenses/actions/validate-key
measure keygen-nonce "$work/keygen-nonce.lua" /v1/licenses/actions/validate-key
ratios validate validate-nonce keygen-validate-key keygen-nonce
python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
r = lambda n: float(open(f"{d}/{n}.rps").read())
print(f"keygen validate-key / tessera validate with nonce (both signed per answer): {r('keygen-validate-key') / r('validate-nonce'):.2f}")
print(f"keygen validate-key / tessera validate without nonce (reused document):     {r('keygen-validate-key') / r('validate'):.2f}")
PY
