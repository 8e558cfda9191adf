# Shared by the bench scripts: `source bench/lib.sh; bench_setup 15s 256`.

pids=()

# bench_setup DURATION CONNECTIONS: defaults for $DURATION and $CONNECTIONS
# (the environment wins), wrk, open files, the release binary in $BIN
# unless given, a scratch $work removed (with the servers) at exit.
bench_setup() {
  DURATION=${DURATION:-$1}
  CONNECTIONS=${CONNECTIONS:-$2}
  command -v wrk >/dev/null || { echo "installing wrk" >&2; apt-get install -y wrk >/dev/null; }
  ulimit -n 65536 2>/dev/null || true
  if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin tessera
    BIN=target/release/tessera
  fi
  work=$(mktemp -d)
  trap 'stop_servers; rm -rf "$work"' EXIT
}

# measure NAME SCRIPT PATH: wrk against $url$PATH (SCRIPT may be empty);
# prints req/s, p99 and non-2xx, and keeps req/s in $work/NAME.rps.
measure() {
  local out rps p99 errs
  if [ -n "$2" ]; then out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$2" "$url$3"); else out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$url$3"); fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  printf '%-28s %12s req/s   p99 %8s   non-2xx %s\n' "$1" "$rps" "$p99" "${errs:-0}"
  echo "$rps" >"$work/$1.rps"
}

# ratios NAME…: each measurement's req/s as a share of /healthz's (both
# kept by measure in this run).
ratios() {
  python3 - "$work" "$@" <<'PY'
import sys
d = sys.argv[1]
r = lambda n: float(open(f"{d}/{n}.rps").read())
for n in sys.argv[2:]:
    print(f"{n:28s} {100 * r(n) / r('healthz'):5.1f} % of healthz")
PY
}

# admin_post_script FILE KEY BODY: a wrk script POSTing BODY with the admin KEY.
admin_post_script() {
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $2"
wrk.body = '$3'
LUA
}

# start_server NAME [server args…]: the authority on a free port, data in
# $work/NAME, rate limiting off; sets $url, $pid (killed by stop_servers)
# and $data_dir.
start_server() {
  local name=$1; shift
  data_dir=$work/$name
  TESSERA_LOG=warn $BIN server --listen 127.0.0.1:0 --data-dir "$work/$name" --rate-limit 0 "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  pids+=("$pid")
  url=$(wait_listening "$work/$name.out")
  if [ -z "$url" ]; then
    echo "the server did not start:" >&2
    cat "$work/$name.err" >&2
    exit 1
  fi
}

# wait_listening FILE: waits until a server's output FILE says where it
# listens, and prints that URL (nothing if it never does).
wait_listening() {
  for _ in $(seq "${START_TRIES:-100}"); do grep -q '^listening on ' "$1" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^listening on //p' "$1"
}

# start_floor BODY: `tessera-bench http-floor` ($BENCH, built unless given),
# each answer as long as the authority at $url answers BODY at
# /v1/validate; sets $floor_url, $floor_pid and $answer_bytes.
start_floor() {
  if [ -z "${BENCH:-}" ]; then
    cargo build --release --quiet -p tessera-bench
    BENCH=target/release/tessera-bench
  fi
  answer_bytes=$(curl -s -H 'Content-Type: application/json' -d "$1" "$url/v1/validate" | wc -c)
  $BENCH http-floor --answer-bytes "$answer_bytes" >"$work/floor.out" 2>&1 &
  floor_pid=$!
  pids+=("$floor_pid")
  floor_url=$(wait_listening "$work/floor.out")
  if [ -z "$floor_url" ]; then
    echo "the HTTP floor did not start:" >&2
    cat "$work/floor.out" >&2
    exit 1
  fi
}

# bench_license: issue a year-long license (features a, b, c) on the
# server start_server last started; prints its token.
bench_license() {
  TESSERA_SERVER=$url TESSERA_DATA_DIR=$data_dir $BIN license issue --customer Bench --plan enterprise \
    --features a,b,c --duration 365d --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

# stop_servers: every server start_server started.
stop_servers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}

# post_script FILE BODY: a wrk script POSTing the JSON BODY to the URL given.
post_script() {
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$2'
LUA
}

# nonce_script FILE TOKEN: a wrk script validating TOKEN (instance bench-1)
# with a new nonce each request, so every answer is signed anew.
nonce_script() {
  cat >"$1" <<LUA
local n = 0
request = function()
  n = n + 1
  local body = '{"token":"$2","instance_id":"bench-1","nonce":"n' .. n .. '-' .. math.random(1e9) .. '"}'
  return wrk.format("POST", "/v1/validate", {["Content-Type"] = "application/json"}, body)
end
LUA
}

# random_token: a well-formed `tsr_` token (30 random base-62 characters
# and their CRC-32 checksum) that no authority issued.
random_token() {
  python3 - <<'PY'
import random, string, zlib
alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
body = ''.join(random.choice(alphabet) for _ in range(30))
crc = zlib.crc32(body.encode()); out = ''
for _ in range(6): out = alphabet[crc % 62] + out; crc //= 62
print('tsr_' + body + out)
PY
}
