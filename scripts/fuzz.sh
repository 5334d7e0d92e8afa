#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a fixed time (default 20 s each) with cargo fuzz (libFuzzer,
# AddressSanitizer; needs the nightly toolchain: without it, a warning and nothing run). A crash fails the run and leaves the input in
# fuzz/artifacts/<target>/. The corpus grows in fuzz/corpus/ (not committed).
# Usage: scripts/fuzz.sh [seconds per target] [target…]
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT/fuzz"
seconds="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(token_verify capture_request template_render link_rewrite)
if ! rustup toolchain list | grep -q '^nightly'; then
  # cargo fuzz needs nightly (sanitizer flags). Say so loudly rather than fail a machine without it.
  echo "WARNING: no nightly toolchain: the fuzz targets were NOT run (rustup toolchain install nightly)" >&2
  exit 0
fi
cargo +nightly fuzz build
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  out="$(mktemp)"
  if ! cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 >"$out" 2>&1; then
    tail -40 "$out"; rm -f "$out"; exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$out" | tail -1 | grep -o '[0-9]*' || echo '?')
  echo "fuzz $t: ${seconds} s, $runs runs, coverage $cov edges, no crash"
  rm -f "$out"
done
