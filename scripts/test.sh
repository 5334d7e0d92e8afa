#!/usr/bin/env bash
# Installs what is missing, then runs every check and test: formatting, lints (native and wasm),
# the dependency policy, the core's unit/property/vector tests, a release build of both workers
# (with their size budgets), each fuzz target for a short fixed time, and the end-to-end tests
# against that build under wrangler dev with local D1 and Queues.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "setup"
scripts/setup.sh

step "widget build (size budget)"
node capture-widget/build.mjs

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p epistola-worker -p epistola-send-worker --target wasm32-unknown-unknown --locked -- -D warnings
# The core, the sender and the dashboard must stay free of JS bindings: they have to build for bare wasm32 on their own.
cargo check -p epistola-core -p epistola-sender -p epistola-dashboard --target wasm32-unknown-unknown --locked

step "dependency policy (cargo deny: licences, bans, sources; cargo machete: unused)"
cargo deny --log-level error check licenses bans sources
cargo machete

step "Rust tests (every crate: unit, property, shared vectors, scripted SMTP)"
cargo test --workspace --locked

step "release build"
scripts/build.sh

step "fuzzing (each target ${FUZZ_SECONDS:-20} s)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

step "end-to-end tests"
node --test --test-concurrency=1 tests/e2e/
