#!/usr/bin/env bash
# API conformance: schemathesis (PyPI) against the authority's own
# /openapi.json, bounded examples per operation. Fails on any 5xx or any
# response that does not match the schema.
#
#   bash bench/schemathesis.sh               # 50 examples per operation
#   EXAMPLES=200 bash bench/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES=${EXAMPLES:-50}
command -v st >/dev/null || pip3 install --quiet 'schemathesis>=4,<5'
# TESSERA_BIN: use an already built binary (CI passes target/debug/tessera).
if [ -z "${TESSERA_BIN:-}" ]; then cargo build --release --quiet --bin tessera; fi
BIN=${TESSERA_BIN:-target/release/tessera}
work=$(mktemp -d)
source bench/lib.sh
trap 'stop_servers; rm -rf "$work"' EXIT
start_server data
key=$(cat "$work/data/admin.key")
# Something to find: one license.
export TESSERA_SERVER=$url TESSERA_DATA_DIR=$work/data
$BIN license issue --customer Acme --plan gold --duration 30d >/dev/null
status=0
st run "$url/openapi.json" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples "$EXAMPLES" --seed 1 --no-shrink \
  --phases examples,coverage,fuzzing \
  -H "Authorization: Bearer $key" \
  --request-timeout 10 --generation-database none || status=$?
if grep -q 'panicked' "$work/data.err"; then echo "the server logged a panic" >&2; exit 1; fi
exit $status
