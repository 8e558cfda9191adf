#!/usr/bin/env bash
# Crash test: renewals against the server binary while it is killed with
# kill -9 at random moments and restarted; an agent watching the license is
# killed too. Checks that every acknowledged renewal survived, that the
# revisions in the audit log are contiguous, and that the agent's state file
# was never torn or rolled back.
#
#   bash bench/crash.sh                 # 10,000 renewals
#   RENEWALS=2000 bash bench/crash.sh   # a shorter run (what .ci/run does)
set -euo pipefail
cd "$(dirname "$0")/.."
# TESSERA_BIN: use an already built binary (CI passes target/debug/tessera).
if [ -z "${TESSERA_BIN:-}" ]; then cargo build --release --quiet --bin tessera; fi
exec python3 bench/crash.py "${TESSERA_BIN:-target/release/tessera}"
