#!/usr/bin/env bash
# Release build of both workers, offline: worker/build/ (edge) and send-worker/build/ (sending),
# each with shim.mjs, index.js and index_bg.wasm. Prints each wasm's size, raw and gzip, and fails
# over budget: the edge worker serves the pixel and must start fast; the sending worker may be
# larger (templates, HTML rewriting, the workspace pages) but stays at half the platform's limit
# (3 MB compressed on the Workers Free plan since late 2024; it was 1 MB before).
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
  # A second -Oz over worker-build's output still finds ~3 KB gzip (measured); every e2e test
  # runs the wasm this step writes.
  "$WASM_OPT_BIN" "$wasm" "${features[@]}" -Oz --strip-debug --strip-producers -o "$wasm.stripped"
  mv "$wasm.stripped" "$wasm"
  local raw gz
  raw=$(wc -c < "$wasm"); gz=$(gzip -9 -c "$wasm" | wc -c)
  echo "$label wasm: $raw bytes, $gz bytes gzip ($((gz / 1024)) KiB; budget $budget KiB)"
  [ "$gz" -le $((budget * 1024)) ] || { echo "$label wasm is over its $budget KiB gzip budget" >&2; exit 1; }
}

build worker "edge worker" 250
build send-worker "sending worker" 1536

# What the platform is sent: wasm and bundled JS together, as `wrangler deploy --dry-run` reports
# it (offline, nothing is uploaded). The edge's budget is on this number, not on the wasm alone.
upload_budget() { # wrangler config, label, gzip budget in KiB
  local config="$1" label="$2" budget="$3" out kib
  out="$(mktemp -d)"
  kib=$(cd "$ROOT" && npx wrangler deploy --dry-run --config "$config" --outdir "$out" 2>&1 |
    sed -n 's/.*Total Upload: .* gzip: \([0-9.]*\) KiB.*/\1/p')
  rm -rf "$out"
  [ -n "$kib" ] || { echo "$label: wrangler reported no upload size" >&2; exit 1; }
  echo "$label upload: $kib KiB gzip (budget $budget KiB)"
  awk -v k="$kib" -v b="$budget" 'BEGIN { exit !(k <= b) }' ||
    { echo "$label upload is over its $budget KiB gzip budget" >&2; exit 1; }
}
upload_budget wrangler.toml "edge worker" 240
upload_budget send-worker/wrangler.toml "sending worker" 1536
