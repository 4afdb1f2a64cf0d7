#!/usr/bin/env bash
# Runs every test of Depot: formatting and lints, unit tests, integration tests
# against SQLite, PostgreSQL and PostgreSQL with an object store (Garage),
# then the browser tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

# Clippy lints the workspace's own crates as they are compiled for the tests
# (clippy-driver as cargo's wrapper for workspace members, which is what
# `cargo clippy` itself does), with every warning an error. A `cargo clippy`
# of its own would type-check every dependency again, once for the server
# and once for wasm32: 3 min 25 s of a cold run. Dependencies are compiled
# by rustc as before, so they are shared with other debug builds.
# setup.sh adds clippy when missing. A plain assignment first: without
# clippy-driver the run stops here rather than building unlinted.
clippy_driver="$(rustup which clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

step "building the UI (server and WASM) with cargo-leptos, linted by clippy"
cargo leptos build --split

step "starting a throw-away object store (Garage) for the tests"
source scripts/garage.sh
trap garage_stop EXIT

step "unit and integration tests (SQLite, PostgreSQL, PostgreSQL with the object store)"
# Every target (the benchmarks too), so clippy sees all of the code.
"${as_cargo_leptos[@]}" cargo test -p app -p depot-inspect -p depot-server --all-targets --no-run
# They take about five minutes. With cargo-nextest (.config/nextest.toml) a test
# that hangs is stopped and retried; either way a hung run fails here rather
# than holding CI until its own limit.
if cargo nextest --version >/dev/null 2>&1; then
  timeout 20m "${as_cargo_leptos[@]}" cargo nextest run -p app -p depot-inspect -p depot-server
else
  timeout 20m "${as_cargo_leptos[@]}" cargo test -p app -p depot-inspect -p depot-server
fi

step "browser tests (Playwright, headless Chromium)"
export DEPOT_BIN="$CARGO_TARGET_DIR/debug/depot"
export DEPOT_SITE_ROOT="$PWD/target/site"
(cd end2end && npx playwright test)

step "browser tests again, on PostgreSQL"
e2e_db="depot_e2e_$$"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $e2e_db"
trap 'garage_stop; psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $e2e_db WITH (FORCE)"' EXIT
(cd end2end && DEPOT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$e2e_db" npx playwright test)
step "every test passed"
