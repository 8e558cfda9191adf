#!/usr/bin/env bash
# Throughput of POST /v1/validate against GET /healthz on the same server in
# the same run (wrk, 256 connections). Prints requests/s, p99, and the ratio.
#
#   bash bench/validate.sh            # 15 s per measurement
#   DURATION=30s bash bench/validate.sh
#   BIN=/path/to/tessera bash bench/validate.sh   # another build (A/B runs)
#   LICENSES=100000 bash bench/validate.sh         # also many installations
#   FLOOR=1 bash bench/validate.sh                  # also the HTTP floor
#
# Three validate variants are measured:
#   - no nonce, one instance id: what a polling product sends; the signed
#     document for (license, revision, instance) is reused for up to 60 s;
#   - unique nonce per request: a forced round trip, signed every time;
#   - unknown (well-formed) token: a signed not_found every time.
#
# With LICENSES=N (N ≥ 1), N more licenses are imported first (JSON lines,
# keys BENCH-KEY-00000001 …, no seat limit) and two more variants run:
#   - many-first: each of the N licenses asked once, in order, each request
#     its own instance (every answer is a first ask: signed);
#   - many-random: then tokens drawn at random from the N, each request its
#     own instance — a fleet polling, each license asked again within the
#     signer's 60 s reuse window.
#
# With FLOOR=1, `tessera-bench http-floor` (BENCH, built unless given) runs
# beside the authority: the same HTTP stack reading the same request and
# sending an answer of the same length, doing nothing else. Its validate
# against its own /healthz is the most any implementation could reach on
# this machine; it is measured in the same run, after the authority.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_setup 15s 256

start_server data
token=$(bench_license)
unknown=$(random_token)

post_script "$work/plain.lua" '{"token":"'"$token"'","instance_id":"bench-1","app_version":"1.0"}'
post_script "$work/unknown.lua" '{"token":"'"$unknown"'"}'
nonce_script "$work/nonce.lua" "$token"

LICENSES=${LICENSES:-0}
if [ "$LICENSES" -gt 0 ]; then
  awk -v n="$LICENSES" 'BEGIN { for (i = 1; i <= n; i++)
    printf "{\"key\":\"BENCH-KEY-%08d\",\"customer\":\"Customer %d\",\"plan\":\"enterprise\",\"features\":[\"sso\",\"audit\"],\"expires_at\":\"2099-01-01\"}\n", i, i % 5000 }' >"$work/many.jsonl"
  TESSERA_SERVER=$url TESSERA_DATA_DIR=$data_dir $BIN license import "$work/many.jsonl" --batch 5000 2>"$work/import.err" ||
    { cat "$work/import.err" >&2; exit 1; }
  # In order, once each: every thread walks its own half.
  cat >"$work/many-first.lua" <<LUA
local thread_no = 0
setup = function(thread) thread:set("half", thread_no); thread_no = thread_no + 1 end
local n = 0
request = function()
  n = n + 1
  local i = (n * 2 + half) % $LICENSES + 1
  local body = string.format('{"token":"BENCH-KEY-%08d","instance_id":"f-%d-%d"}', i, half, n)
  return wrk.format("POST", "/v1/validate", {["Content-Type"] = "application/json"}, body)
end
LUA
  cat >"$work/many-random.lua" <<LUA
request = function()
  local body = string.format('{"token":"BENCH-KEY-%08d","instance_id":"r-%d"}', math.random(1, $LICENSES), math.random(1, 1e9))
  return wrk.format("POST", "/v1/validate", {["Content-Type"] = "application/json"}, body)
end
LUA
fi

# Warm-up (page cache, allocator, connection setup).
wrk -t2 -c"$CONNECTIONS" -d3s -s "$work/plain.lua" "$url/v1/validate" >/dev/null

echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores, $CONNECTIONS connections, $DURATION each"
measure healthz "" /healthz
measure validate "$work/plain.lua" /v1/validate
measure validate-nonce "$work/nonce.lua" /v1/validate
measure validate-unknown "$work/unknown.lua" /v1/validate
variants="validate validate-nonce validate-unknown"
if [ "$LICENSES" -gt 0 ]; then
  validations() { curl -s "$url/metrics" | awk '/^tessera_validations_total/ {s += $2} END {print s + 0}'; }
  before=$(validations)
  # As long as it takes to ask each license once at this machine's rate.
  first_duration=${FIRST_DURATION:-$(( LICENSES / 4000 + 5 ))s}
  DURATION=$first_duration measure many-first "$work/many-first.lua" /v1/validate
  asked=$(( $(validations) - before ))
  [ "$asked" -ge "$LICENSES" ] || echo "warning: only $asked first asks for $LICENSES licenses (raise FIRST_DURATION)"
  measure many-random "$work/many-random.lua" /v1/validate
  variants="$variants many-first many-random"
fi
if [ "${FLOOR:-0}" = 1 ]; then
  start_floor '{"token":"'"$token"'","instance_id":"bench-1","app_version":"1.0"}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
  url=$floor_url
  echo "HTTP floor: the same request, a $answer_bytes-byte answer, nothing else"
  wrk -t2 -c"$CONNECTIONS" -d3s -s "$work/plain.lua" "$url/v1/validate" >/dev/null
  measure floor-healthz "" /healthz
  measure floor-validate "$work/plain.lua" /v1/validate
fi
ratios $variants
if [ "${FLOOR:-0}" = 1 ]; then
  python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
r = lambda n: float(open(f"{d}/{n}.rps").read())
floor = r("floor-validate") / r("floor-healthz")
print(f"{'floor (HTTP only)':28s} {100 * floor:5.1f} % of its healthz")
print(f"{'validate / floor':28s} {100 * r('validate') / r('healthz') / floor:5.1f} % of the floor's ratio")
PY
fi
