#!/usr/bin/env bash
# Release build of the worker (worker/build/: shim.mjs, index.js, index_bg.wasm), offline.
# Prints the wasm size, raw and gzip.
set -euo pipefail
source "$(dirname "$0")/env.sh"
node "$ROOT/capture-widget/build.mjs"
cd "$ROOT/worker"
log="$(mktemp)"
if ! worker-build --release >"$log" 2>&1; then cat "$log"; rm -f "$log"; exit 1; fi
rm -f "$log"
wasm=build/index_bg.wasm
# worker-build keeps the wasm name section (~100 KB) for readable stack traces; the release bundle
# drops it. Features enabled as worker-build enables them, so nothing is re-encoded differently.
features=(--enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory
  --enable-multivalue --enable-reference-types --enable-exception-handling)
"$WASM_OPT_BIN" "$wasm" "${features[@]}" --strip-debug --strip-producers -o "$wasm.stripped"
mv "$wasm.stripped" "$wasm"
raw=$(wc -c < "$wasm"); gz=$(gzip -9 -c "$wasm" | wc -c)
echo "worker wasm: $raw bytes, $gz bytes gzip ($((gz / 1024)) KiB; budget 250 KiB)"
[ "$gz" -le $((250 * 1024)) ] || { echo "worker wasm is over the 250 KiB gzip budget" >&2; exit 1; }
