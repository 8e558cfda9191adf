#!/usr/bin/env bash
# Machines (docs/PROTOCOL.md §19) against validation and issuing, in one run
# on one server (SQLite, wrk, 64 connections):
#   - validate: one hot token, no nonce (the signed document is reused);
#   - validate+nonce: the same with a fresh nonce each (a fresh signature
#     each: the floor for any answer that must be signed anew);
#   - heartbeat: POST /v1/machines/heartbeat, 1,000 floating machines in
#     turn (each renews a lease: a write and a fresh signature);
#   - activate: POST /v1/machines/activate, a new machine every request
#     (each a committed activation with its audit event);
#   - issue: POST /v1/admin/licenses (each a committed license).
#
#   bash bench/machines.sh                 # 10 s per measurement
#   DURATION=20s BIN=/path/to/tessera bash bench/machines.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_setup 10s 64

start_server data
export TESSERA_SERVER=$url TESSERA_DATA_DIR=$work/data
issue() { $BIN license issue --customer Bench --plan p --duration 365d --json "$@" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
plain=$(issue)
floating=$(issue --max-machines 100000 --floating --lease-ttl 15m)
admin_key=$(cat "$work/data/admin.key")

# 1,000 floating machines to heartbeat.
python3 - "$url" "$floating" <<'PY'
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
for i in range(1000):
    body = json.dumps({"token": token, "fingerprint": f"bench-{i}"}).encode()
    req = urllib.request.Request(f"{url}/v1/machines/activate", body, {"Content-Type": "application/json"})
    status = json.load(urllib.request.urlopen(req))["verdict"]["status"]
    assert status == "active", status
PY

post_script "$work/validate.lua" '{"token":"'"$plain"'","instance_id":"bench-1"}'
cat >"$work/nonce.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  local body = '{"token":"$plain","instance_id":"bench-1","nonce":"n-' .. n .. '"}'
  return wrk.format("POST", "/v1/validate", {["Content-Type"] = "application/json"}, body)
end
LUA
cat >"$work/heartbeat.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  local body = '{"token":"$floating","fingerprint":"bench-' .. (n % 1000) .. '"}'
  return wrk.format("POST", "/v1/machines/heartbeat", {["Content-Type"] = "application/json"}, body)
end
LUA
cat >"$work/activate.lua" <<LUA
local n = 0
local t = math.random(1e9)
request = function()
  n = n + 1
  local body = '{"token":"$floating","fingerprint":"new-' .. t .. '-' .. n .. '"}'
  return wrk.format("POST", "/v1/machines/activate", {["Content-Type"] = "application/json"}, body)
end
LUA
admin_post_script "$work/issue.lua" "$admin_key" '{"customer":"Load","plan":"p","duration":"30d"}'

wrk -t2 -c"$CONNECTIONS" -d3s -s "$work/validate.lua" "$url/v1/validate" >/dev/null
echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores, $CONNECTIONS connections, $DURATION each"
measure validate "$work/validate.lua" /v1/validate
measure validate+nonce "$work/nonce.lua" /v1/validate
measure heartbeat "$work/heartbeat.lua" /v1/machines/heartbeat
measure activate "$work/activate.lua" /v1/machines/activate
measure issue "$work/issue.lua" /v1/admin/licenses
python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
r = lambda n: float(open(f"{d}/{n}.rps").read())
print(f"heartbeat    {100 * r('heartbeat') / r('validate'):5.1f} % of validate")
print(f"heartbeat    {100 * r('heartbeat') / r('validate+nonce'):5.1f} % of validate+nonce")
print(f"activate     {100 * r('activate') / r('issue'):5.1f} % of issue")
PY
