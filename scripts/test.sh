#!/usr/bin/env bash
# Runs every test of Depot: formatting and lints, unit tests, integration tests
# against SQLite and PostgreSQL, then the browser tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

# cargo-leptos builds the server with these set; giving cargo the same ones
# lets the tests, lints and UI build share one set of compiled artifacts
# (leptos reads LEPTOS_OUTPUT_NAME at compile time).
export RUSTFLAGS="--cfg erase_components"
export LEPTOS_OUTPUT_NAME=depot LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg
export LEPTOS_SITE_ADDR=127.0.0.1:3000 LEPTOS_RELOAD_PORT=3001 LEPTOS_LIB_DIR=frontend
export LEPTOS_BIN_DIR=server LEPTOS_HASH_FILES=false LEPTOS_JS_MINIFY=false

step "cargo fmt --check"
cargo fmt --all -- --check

step "building the UI (server and WASM) with cargo-leptos"
cargo leptos build

step "cargo clippy (server side, and the WASM entry for wasm32)"
cargo clippy -p app -p depot-server --all-targets -- -D warnings
cargo clippy -p depot-frontend --target wasm32-unknown-unknown -- -D warnings

step "unit and integration tests (SQLite and PostgreSQL)"
cargo test -p app -p depot-server

step "browser tests (Playwright, headless Chromium)"
export DEPOT_BIN="$CARGO_TARGET_DIR/debug/depot"
export DEPOT_SITE_ROOT="$PWD/target/site"
(cd end2end && npx playwright test)
