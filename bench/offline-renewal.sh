#!/usr/bin/env bash
# Renewal by file (docs/PROTOCOL.md §25): an isolated machine's agent
# watching its offline file; the license is extended and answered again
# (`tessera license offline-activate`), and the new response is moved into
# place. Timed from the move to the agent's /v1/status showing the new
# revision, over TRIES renewals (p50 / p99 / max).
#
#   bash bench/offline-renewal.sh
#   TRIES=50 bash bench/offline-renewal.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_setup 1s 1
TRIES=${TRIES:-20}

start_server data
export TESSERA_SERVER=$url TESSERA_DATA_DIR=$work/data
key=$(sed -n 's/.*public key: *//p' "$work/data.out" | head -1)
issued=$($BIN license issue --customer Vault --plan p --duration 30d --features sso --max-machines 1 --json)
license=$(echo "$issued" | python3 -c 'import json,sys; print(json.load(sys.stdin)["license"]["id"])')
echo "$issued" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' >"$work/token"
agent_dir=$work/agent
$BIN offline request --public-key "$key" --token-file "$work/token" --state-dir "$agent_dir" \
  --fingerprint vault-1 -o "$work/request.txt" 2>/dev/null
$BIN license offline-activate "$work/request.txt" --ttl 365d -o "$work/response.json" 2>/dev/null
env -u TESSERA_SERVER TESSERA_LOG=warn $BIN agent --public-key "$key" --token-file "$work/token" --state-dir "$agent_dir" \
  --fingerprint vault-1 --offline-file "$work/response.json" --listen 127.0.0.1:0 >"$work/agent.out" 2>"$work/agent.err" &
pids+=("$!")
agent=$(wait_listening "$work/agent.out")
echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores; $TRIES renewals by file"
python3 - "$BIN" "$license" "$work" "$agent" "$TRIES" <<'PY'
import json, os, subprocess, sys, time, urllib.request
bin_, license, work, agent, tries = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
status = lambda: json.loads(urllib.request.urlopen(agent + "/v1/status", timeout=5).read())
assert status()["state"] == "valid", status()
samples = []
for i in range(tries):
    subprocess.run([bin_, "license", "extend", license, "--by", "1d"], check=True, capture_output=True)
    new = os.path.join(work, "new.json")
    subprocess.run([bin_, "license", "offline-activate", os.path.join(work, "request.txt"), "--ttl", "365d", "-o", new],
                   check=True, capture_output=True)
    expected = status()["revision"] + 1
    started = time.perf_counter()
    os.replace(new, os.path.join(work, "response.json"))
    while status()["revision"] != expected:
        if time.perf_counter() - started > 10:
            sys.exit(f"renewal {i + 1} not taken within 10 s: {status()}; agent log: {open(os.path.join(work, 'agent.err')).read()[-2000:]}")
        time.sleep(0.002)
    samples.append((time.perf_counter() - started) * 1000)
samples.sort()
q = lambda p: samples[round((len(samples) - 1) * p)]
print(f"renewal by file: p50 {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms, max {samples[-1]:.0f} ms over {tries}")
PY
