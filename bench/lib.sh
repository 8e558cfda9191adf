# Shared by the bench scripts (source it after setting BIN and work).

pids=()

# start_server NAME [server args…]: the authority on a free port, data in
# $work/NAME, rate limiting off; sets $url and $pid (killed by stop_servers).
start_server() {
  local name=$1; shift
  TESSERA_LOG=warn $BIN server --listen 127.0.0.1:0 --data-dir "$work/$name" --rate-limit 0 "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do grep -q '^listening on ' "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$work/$name.out")
  if [ -z "$url" ]; then
    echo "the server did not start:" >&2
    cat "$work/$name.err" >&2
    exit 1
  fi
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
