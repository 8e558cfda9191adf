#!/usr/bin/env bash
# Brute force from one address, and answer timing of unknown vs known tokens.
#
#   bash bench/bruteforce.sh            # 1,000 wrong tokens; 3 x 2,000 timed requests
#
# 1. A server with the default rate limit (600/min per IP, bursts of 600):
#    1,000 well-formed wrong tokens from 127.0.0.1 as fast as possible;
#    counts answers by status and checks every 429 has Retry-After and
#    RateLimit-* headers.
# 2. A server with limiting off: interleaved validations of a known token,
#    one repeated unknown token, and a fresh unknown token each time, all
#    with a unique nonce (so every answer is signed anew); prints median and
#    p90 of each. An attacker timing answers learns nothing if the medians
#    agree within noise.
set -euo pipefail
cd "$(dirname "$0")/.."
# TESSERA_BIN: use an already built binary (CI passes target/debug/tessera).
if [ -z "${TESSERA_BIN:-}" ]; then cargo build --release --quiet --bin tessera; fi
exec python3 bench/bruteforce.py "${TESSERA_BIN:-target/release/tessera}"
