#!/usr/bin/env bash
# Release build of the worker (worker/build/: shim.mjs, index.js, index_bg.wasm), offline.
# Prints the wasm size, raw and gzip.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT/worker"
log="$(mktemp)"
if ! worker-build --release >"$log" 2>&1; then cat "$log"; rm -f "$log"; exit 1; fi
rm -f "$log"
wasm=build/index_bg.wasm
raw=$(wc -c < "$wasm"); gz=$(gzip -9 -c "$wasm" | wc -c)
echo "worker wasm: $raw bytes, $gz bytes gzip ($((gz / 1024)) KiB; budget 250 KiB)"
[ "$gz" -le $((250 * 1024)) ] || { echo "worker wasm is over the 250 KiB gzip budget" >&2; exit 1; }
