#!/usr/bin/env bash
# The audit log's chain at scale (docs/PROTOCOL.md §27): N events written
# straight into a stopped authority's SQLite file (as events from before the
# chain existed), the start that hashes them, then `tessera events verify`
# and `tessera events export --format jsonl` over all of them — wall time
# and the CLI's peak memory (/usr/bin/time), for each N, so that constant
# memory shows as the same peak for 100,000 and 1,000,000 events.
#
#   bash bench/audit-export.sh
#   COUNTS="100000 1000000" bash bench/audit-export.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_setup 1s 1
COUNTS=${COUNTS:-"100000 1000000"}
export START_TRIES=6000  # hashing a million events at start takes a while
command -v sqlite3 >/dev/null || { echo "installing sqlite3" >&2; apt-get install -y sqlite3 >/dev/null; }

echo "tessera $($BIN --version | cut -d' ' -f2), $(nproc) cores"
printf '%-10s %12s %12s %10s %12s %10s\n' events "hash at start" verify "peak KiB" export "peak KiB"
for n in $COUNTS; do
  name=audit-$n
  start_server "$name"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  sqlite3 "$work/$name/tessera.db" <<SQL
INSERT INTO events (at, actor, kind, license_id, revision, before, after)
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $n)
SELECT 1764547200 + x / 100, 'bench', 'license.extended', 'lic_01936b2e-7c3a-7def-8a12-0123456789ab', x,
       '{"expires_at":"2027-01-01T00:00:00Z"}', '{"expires_at":"2027-01-02T00:00:00Z"}' FROM c;
SQL
  t0=$(date +%s.%N)
  start_server "$name"
  t1=$(date +%s.%N)
  export TESSERA_SERVER=$url TESSERA_DATA_DIR=$work/$name
  /usr/bin/time -f '%e %M' -o "$work/verify.time" $BIN events verify 2>"$work/verify.err" >/dev/null \
    || { cat "$work/verify.err" >&2; exit 1; }
  /usr/bin/time -f '%e %M' -o "$work/export.time" $BIN events export --format jsonl 2>"$work/export.err" >"$work/export.jsonl" \
    || { cat "$work/export.err" >&2; exit 1; }
  lines=$(wc -l <"$work/export.jsonl")
  [ "$lines" -eq "$n" ] || { echo "exported $lines of $n events" >&2; exit 1; }
  read -r vs vk <"$work/verify.time"
  read -r es ek <"$work/export.time"
  printf '%-10s %11.1fs %11ss %10s %11ss %10s\n' "$n" "$(echo "$t1 - $t0" | bc)" "$vs" "$vk" "$es" "$ek"
  rm -f "$work/export.jsonl"
  stop_servers; pids=()
done
