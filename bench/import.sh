#!/usr/bin/env bash
# Bulk import and a million licenses (issue 18's numbers), in one run:
#   1. `tessera license import` of ROWS licenses (JSON lines, keys kept) on
#      SQLite and on PostgreSQL: wall time of the whole command (the check
#      pass included) and the write pass's rows/s as the CLI reports it;
#   2. with those licenses on SQLite: start to ready (restart of the server
#      on the full database, until it prints its address and /readyz is 200);
#   3. POST /v1/validate req/s with ROWS licenses and with 1,000, same run:
#      one hot token (no nonce), and tokens drawn at random from all of
#      them, each request its own instance; and the floor for the random
#      case: 1,000 licenses with every answer signed;
#   4. the server's RSS after validating 100,000 distinct tokens.
#
#   bash bench/import.sh
#   ROWS=100000 DURATION=10s bash bench/import.sh
#   ONLY=sqlite BATCH=5000 bash bench/import.sh   # the SQLite import alone, --batch 5000
#   POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bash bench/import.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_setup 15s 128
ROWS=${ROWS:-1000000}
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
dbs=()
cleanup() {
  stop_servers
  for d in "${dbs[@]}"; do psql "$POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# licenses FILE N: N licenses as JSON lines, keys BENCH-KEY-00000001 …
licenses() {
  awk -v n="$2" 'BEGIN { for (i = 1; i <= n; i++)
    printf "{\"key\":\"BENCH-KEY-%08d\",\"customer\":\"Customer %d\",\"plan\":\"enterprise\",\"features\":[\"sso\",\"audit\"],\"expires_at\":\"2099-01-01\",\"max_users\":50}\n", i, i % 5000 }' >"$1"
}

# import LABEL: imports $work/rows.jsonl into the server at $url; prints
# the wall time and the CLI's summary.
import() {
  local started ended
  started=$(date +%s.%N)
  TESSERA_SERVER=$url TESSERA_DATA_DIR=$1 $BIN license import "$work/rows.jsonl" ${BATCH:+--batch "$BATCH"} 2>"$work/import.err" ||
    { cat "$work/import.err" >&2; exit 1; }
  ended=$(date +%s.%N)
  python3 - "$2" "$started" "$ended" "$ROWS" "$(tail -1 "$work/import.err")" <<'PY'
import sys
label, a, b, n, summary = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
print(f"import {label:10s} {n} rows in {b - a:6.1f} s = {n / (b - a):8.0f} rows/s overall (check pass included); {summary}")
PY
}

echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores, $ROWS licenses"
licenses "$work/rows.jsonl" "$ROWS"

# 1. Import, SQLite then PostgreSQL.
start_server big
big_url=$url big_pid=$pid
import "$work/big" sqlite
[ "${ONLY:-}" = sqlite ] && exit 0
name="tessera_bench_$RANDOM$RANDOM"
psql "$POSTGRES_URL" -qc "CREATE DATABASE $name" >/dev/null
dbs+=("$name")
start_server pg --database-url "${POSTGRES_URL%/*}/$name"
import "$work/pg" postgres
kill "$pid"

# 2. Start to ready on the full SQLite database.
kill "$big_pid"; wait "$big_pid" 2>/dev/null || true
started=$(date +%s.%N)
start_server big
until curl -sf "$url/readyz" >/dev/null; do sleep 0.01; done
ended=$(date +%s.%N)
big_url=$url big_pid=$pid
python3 -c "import sys; print(f'start to ready with $ROWS licenses: {float(sys.argv[2]) - float(sys.argv[1]):.2f} s')" "$started" "$ended"

# 3. Validate with ROWS licenses and with 1,000, same run.
start_server small
small_url=$url
head -1000 "$work/rows.jsonl" >"$work/small.jsonl"
TESSERA_SERVER=$small_url TESSERA_DATA_DIR=$work/small $BIN license import "$work/small.jsonl" 2>/dev/null
post_script "$work/hot.lua" '{"token":"BENCH-KEY-00000001","instance_id":"bench-1"}'
random_script() { # FILE N: a random one of the first N keys, a new instance each request
  cat >"$1" <<LUA
request = function()
  local body = string.format('{"token":"BENCH-KEY-%08d","instance_id":"i-%d"}', math.random(1, $2), math.random(1, 1e9))
  return wrk.format("POST", "/v1/validate", {["Content-Type"] = "application/json"}, body)
end
LUA
}
random_script "$work/random-big.lua" "$ROWS"
random_script "$work/random-small.lua" 1000
# The floor for random tokens from a million: nearly every one is a
# license's first ask in the run, so its answer is signed (one signature
# per license and revision is then reused). The same 1,000 licenses with a
# nonce per request are signed every time, from memory: what a million
# would reach if reading a license from the database cost nothing.
cat >"$work/random-signed.lua" <<LUA
request = function()
  local body = string.format('{"token":"BENCH-KEY-%08d","instance_id":"i-%d","nonce":"n%d"}', math.random(1, 1000), math.random(1, 1e9), math.random(1, 1e9))
  return wrk.format("POST", "/v1/validate", {["Content-Type"] = "application/json"}, body)
end
LUA
for url in "$small_url" "$big_url"; do
  wrk -t2 -c"$CONNECTIONS" -d3s -s "$work/hot.lua" "$url/v1/validate" >/dev/null
done
measure healthz "" /healthz
# The hot token alternately on each, twice: this machine drifts by more
# than the difference being measured.
for round in 1 2; do
  url=$big_url; measure "hot-big-$round" "$work/hot.lua" /v1/validate
  url=$small_url; measure "hot-small-$round" "$work/hot.lua" /v1/validate
done
url=$big_url
measure random-big "$work/random-big.lua" /v1/validate
url=$small_url
measure random-small "$work/random-small.lua" /v1/validate
measure random-signed "$work/random-signed.lua" /v1/validate
python3 - "$work" "$ROWS" <<'PY'
import sys
d, n = sys.argv[1], sys.argv[2]
r = lambda k: float(open(f"{d}/{k}.rps").read())
big, small = r('hot-big-1') + r('hot-big-2'), r('hot-small-1') + r('hot-small-2')
print(f"one hot token:      {n} licenses {big / 2:8.0f} req/s = {100 * big / small:5.1f} % of 1,000 licenses ({small / 2:.0f}; means of two runs each, alternated)")
print(f"random, own instance: {n} licenses {r('random-big'):8.0f} req/s = {100 * r('random-big') / r('random-small'):5.1f} % of 1,000 licenses ({r('random-small'):.0f})")
print(f"  floor (1,000 licenses, every answer signed): {r('random-signed'):.0f} req/s = {100 * r('random-signed') / r('random-small'):5.1f} % of 1,000 licenses; "
      f"a million reach {100 * r('random-big') / r('random-signed'):5.1f} % of it")
PY

# 4. RSS after 100,000 distinct tokens (a fresh start on the big database).
kill "$big_pid"; wait "$big_pid" 2>/dev/null || true
start_server big
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$pid/status"; }
echo "RSS after start: $(rss)"
cat >"$work/distinct.lua" <<'LUA'
local thread_no = 0
setup = function(thread) thread:set("offset", thread_no * 50000); thread_no = thread_no + 1 end
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"token":"BENCH-KEY-%08d","instance_id":"d-%d"}', offset + (n % 50000) + 1, n)
  return wrk.format("POST", "/v1/validate", {["Content-Type"] = "application/json"}, body)
end
LUA
validations() { curl -s "$url/metrics" | awk '/^tessera_validations_total/ {s += $2} END {print s + 0}'; }
before=$(validations)
# Each thread walks its own 50,000 tokens; 30 s covers them at this
# machine's rate (the count is checked below).
wrk -t2 -c"$CONNECTIONS" -d"${DISTINCT_DURATION:-30s}" -s "$work/distinct.lua" "$url/v1/validate" >/dev/null
done_n=$(( $(validations) - before ))
[ "$done_n" -ge 100000 ] || echo "warning: only $done_n validations: not every one of the 100,000 tokens was asked (raise DISTINCT_DURATION)"
echo "RSS after $done_n validations of 100,000 distinct tokens (each its own instance): $(rss)"
