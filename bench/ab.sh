#!/usr/bin/env bash
# Same-run A/B of one hot token's validation against /healthz, for two
# builds (or one build and the HTTP floor), interleaved in short slices so
# that this machine's drift falls on both alike.
#
#   A=/path/to/old/tessera B=target/release/tessera bash bench/ab.sh
#   A=… FLOOR=1 bash bench/ab.sh      # B is `tessera-bench http-floor` (BENCH)
#   ROUNDS=10 SLICE=3s …               # defaults: 8 rounds of 2 s slices
#
# Each round measures, for A then B: /healthz, the hot token, /healthz
# again; a round's ratio is the validations' req/s over the mean of the two
# /healthz figures around it. Prints every round and the median ratio of
# each side; the server CPU time per request (from /proc) is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
: "${A:?A=<tessera binary> is required}"
BIN=$A
bench_setup 2s 256
ROUNDS=${ROUNDS:-8}
SLICE=${SLICE:-2s}

# One license, imported under the same key into each side, so that both
# answer the same bytes.
token=$(random_token)
printf '{"key":"%s","customer":"Bench","plan":"enterprise","features":["a","b","c"],"expires_at":"2099-01-01"}\n' "$token" >"$work/key.jsonl"
import_key() {
  TESSERA_SERVER=$url TESSERA_DATA_DIR=$data_dir $BIN license import "$work/key.jsonl" >/dev/null 2>"$work/import.err" ||
    { cat "$work/import.err" >&2; exit 1; }
}
start_server a
a_url=$url a_pid=$pid
import_key
body='{"token":"'"$token"'","instance_id":"bench-1","app_version":"1.0"}'
post_script "$work/plain.lua" "$body"
if [ "${FLOOR:-0}" = 1 ]; then
  start_floor "$body"
  b_url=$floor_url b_pid=$floor_pid
  b_name="floor"
else
  : "${B:?B=<tessera binary> or FLOOR=1 is required}"
  BIN=$B
  start_server b
  b_url=$url b_pid=$pid
  import_key
  b_name="B"
fi
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# slice URL PID PATH [SCRIPT]: "req/s requests cpu-ticks"
slice() {
  local t0 out
  t0=$(ticks "$2")
  if [ -n "${4:-}" ]; then out=$(wrk -t2 -c"$CONNECTIONS" -d"$SLICE" -s "$4" "$1$3"); else out=$(wrk -t2 -c"$CONNECTIONS" -d"$SLICE" "$1$3"); fi
  echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '/requests in/ {print $1}') $(( $(ticks "$2") - t0 ))"
}
for side in a b; do
  u=${side}_url
  wrk -t2 -c"$CONNECTIONS" -d2s -s "$work/plain.lua" "${!u}/v1/validate" >/dev/null
done
echo "A: $A"
echo "B: ${B:-$b_name}"
echo "rounds of $SLICE slices, $CONNECTIONS connections, $(nproc) cores"
for r in $(seq "$ROUNDS"); do
  for side in a b; do
    u=${side}_url p=${side}_pid
    echo "$r $side $(slice "${!u}" "${!p}" /healthz) $(slice "${!u}" "${!p}" /v1/validate "$work/plain.lua") $(slice "${!u}" "${!p}" /healthz)"
  done
done | tee "$work/rounds" | awk '{printf "round %s %s: healthz %s, validate %s, healthz %s req/s\n", $1, $2, $3, $6, $9}'
python3 - "$work/rounds" "$b_name" <<'PY'
import os, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
us_per_tick = 1e6 / os.sysconf("SC_CLK_TCK")
for side, name in (("a", "A"), ("b", sys.argv[2])):
    ratios, v_us, h_us = [], [], []
    for r in rows:
        if r[1] != side:
            continue
        h1, hn1, ht1, v, vn, vt, h2, hn2, ht2 = map(float, r[2:])
        ratios.append(v / ((h1 + h2) / 2))
        v_us.append(vt * us_per_tick / vn)
        h_us.append((ht1 + ht2) * us_per_tick / (hn1 + hn2))
    print(f"{name:6s} validate/healthz median {100 * statistics.median(ratios):5.1f} %  "
          f"(min {100 * min(ratios):5.1f}, max {100 * max(ratios):5.1f});  "
          f"server CPU per request: healthz {statistics.median(h_us):5.2f} µs, validate {statistics.median(v_us):5.2f} µs")
PY
