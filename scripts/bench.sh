#!/usr/bin/env bash
# Runs every benchmark and prints ratios against baselines measured in the same run:
#   1. token sign/verify, native, vs a bare HMAC-SHA256 (cargo bench)
#   2. token sign/verify in wasm (V8), vs a bare HMAC in the same module
#   3. campaign letters (render + rewrite + MIME), native and wasm, vs lol_html alone
#   4. pixel and click throughput under bare workerd vs a JS worker that only returns the GIF
#   4b. the edge worker's cold start under bare workerd vs the same JS worker's
#   5. campaign fan-out of 100,000 contacts: D1 write statements per contact scheduled
#   5b. sending 100,000 letters end to end into a counting SMTP sink vs a plain SMTP client (smtplib)
#   6. stats reads for a campaign of 1,000,000 events vs one of 1,000: D1 rows read and latency
#   7. a bounded load test of pixel, click and capture with a count check after the queue drains
#   8. the release workers' wasm sizes (gzip)
# Usage: scripts/bench.sh [seconds per throughput run, default 10]
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
scripts/setup.sh bench
echo "== worker size"; scripts/build.sh
echo; echo "== tokens, native"; cargo bench -p epistola-core --bench tokens --locked 2>/dev/null
echo; echo "== tokens, wasm"
cargo build -p epistola-bench-wasm --release --target wasm32-unknown-unknown --locked 2>/dev/null
node bench/wasm-tokens.mjs
echo; echo "== campaign letters, native"; cargo bench -p epistola-sender --bench compose --locked 2>/dev/null
echo; echo "== campaign letters, wasm"; node bench/wasm-compose.mjs
echo; echo "== campaign fan-out"; node bench/fanout.mjs
echo; echo "== send throughput"; node bench/send-throughput.mjs
echo; echo "== stats at scale"; node bench/stats-scale.mjs
echo; echo "== load, whole pipeline"; node bench/load.mjs 60
echo; echo "== throughput"; node bench/throughput.mjs "${1:-10}"
echo; echo "== cold start"; node bench/cold-start.mjs
