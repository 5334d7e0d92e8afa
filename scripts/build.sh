#!/usr/bin/env bash
# Release build of both workers, offline: worker/build/ (edge) and send-worker/build/ (sending),
# each with shim.mjs, index.js and index_bg.wasm. Prints each wasm's size, raw and gzip, and fails
# over budget: the edge worker serves the pixel and must start fast; the sending worker may be
# larger (templates, HTML rewriting) but stays well under the platform limit.
set -euo pipefail
source "$(dirname "$0")/env.sh"
node "$ROOT/capture-widget/build.mjs"
# The edge's crawler patterns must be those of the installed isbot (package.json pins it).
node "$ROOT/scripts/known-bots.mjs" --check

# worker-build keeps the wasm name section (~100 KB) for readable stack traces; the release bundle
# drops it. Features enabled as worker-build enables them, so nothing is re-encoded differently.
features=(--enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory
  --enable-multivalue --enable-reference-types --enable-exception-handling)

build() { # crate dir, label, gzip budget in KiB
  local dir="$1" label="$2" budget="$3" log
  log="$(mktemp)"
  if ! (cd "$ROOT/$dir" && worker-build --release) >"$log" 2>&1; then cat "$log"; rm -f "$log"; exit 1; fi
  rm -f "$log"
  local wasm="$ROOT/$dir/build/index_bg.wasm"
  "$WASM_OPT_BIN" "$wasm" "${features[@]}" --strip-debug --strip-producers -o "$wasm.stripped"
  mv "$wasm.stripped" "$wasm"
  local raw gz
  raw=$(wc -c < "$wasm"); gz=$(gzip -9 -c "$wasm" | wc -c)
  echo "$label wasm: $raw bytes, $gz bytes gzip ($((gz / 1024)) KiB; budget $budget KiB)"
  [ "$gz" -le $((budget * 1024)) ] || { echo "$label wasm is over its $budget KiB gzip budget" >&2; exit 1; }
}

build worker "edge worker" 250
build send-worker "sending worker" 1024
