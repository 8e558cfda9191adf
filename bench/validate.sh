#!/usr/bin/env bash
# Throughput of POST /v1/validate against GET /healthz on the same server in
# the same run (wrk, 256 connections). Prints requests/s, p99, and the ratio.
#
#   bash bench/validate.sh            # 15 s per measurement
#   DURATION=30s bash bench/validate.sh
#   BIN=/path/to/tessera bash bench/validate.sh   # another build (A/B runs)
#
# Three validate variants are measured:
#   - no nonce, one instance id: what a polling product sends; the signed
#     document for (license, revision, instance) is reused for up to 60 s;
#   - unique nonce per request: a forced round trip, signed every time;
#   - unknown (well-formed) token: a signed not_found every time.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_setup 15s 256

start_server data
token=$(bench_license)
unknown=$(python3 - <<'PY'
import random, string, zlib
alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
body = ''.join(random.choice(alphabet) for _ in range(30))
crc = zlib.crc32(body.encode()); out = ''
for _ in range(6): out = alphabet[crc % 62] + out; crc //= 62
print('tsr_' + body + out)
PY
)

post_script "$work/plain.lua" '{"token":"'"$token"'","instance_id":"bench-1","app_version":"1.0"}'
post_script "$work/unknown.lua" '{"token":"'"$unknown"'"}'
nonce_script "$work/nonce.lua" "$token"

# Warm-up (page cache, allocator, connection setup).
wrk -t2 -c"$CONNECTIONS" -d3s -s "$work/plain.lua" "$url/v1/validate" >/dev/null

echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores, $CONNECTIONS connections, $DURATION each"
measure healthz "" /healthz
measure validate "$work/plain.lua" /v1/validate
measure validate-nonce "$work/nonce.lua" /v1/validate
measure validate-unknown "$work/unknown.lua" /v1/validate
python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
r = lambda n: float(open(f"{d}/{n}.rps").read())
h = r("healthz")
for n in ("validate", "validate-nonce", "validate-unknown"):
    print(f"{n:28s} {100 * r(n) / h:5.1f} % of healthz")
PY
