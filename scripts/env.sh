# Sourced by the other scripts: paths and the variables that keep worker-build offline.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/binaryen/bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_LOG_PATH="$ROOT/.wrangler/logs"
# The exact wasm-bindgen in Cargo.lock (also pinned in Cargo.toml): the CLI must match it.
WASM_BINDGEN_VERSION="$(grep -A1 '^name = "wasm-bindgen"$' "$ROOT/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')"
WORKER_BUILD_VERSION="0.8.7"
CARGO_DENY_VERSION="0.20.2"
CARGO_FUZZ_VERSION="0.13.2"
CARGO_MACHETE_VERSION="0.9.2"
# For the scripts that write to D1 (create-token.sh, create-user.sh): EPISTOLA_PERSIST_TO is the
# local state directory (wrangler's --persist-to), e.g. a test's; the last argument says where.
D1_PERSIST=(); [ -n "${EPISTOLA_PERSIST_TO:-}" ] && D1_PERSIST=(--persist-to "$EPISTOLA_PERSIST_TO")
d1_where_ok() { case "$1" in --local|--remote) ;; *) echo "last argument must be --local or --remote" >&2; exit 2;; esac; }
