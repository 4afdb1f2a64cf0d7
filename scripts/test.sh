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

# The browser tests start as soon as the server they drive is built, and run
# beside the test build and the Rust tests: each run waits on its browser
# and server much of the time, and started after the test build they ended
# last, the cores idle a tenth of the run. Each browser run has its own
# server, port, data and output folder; its report is printed whole once
# the Rust tests have ended, and they have ended too. (The test build leaves
# the server's binary as it is: same profile, features and environment.)
export DEPOT_BIN="$CARGO_TARGET_DIR/debug/depot"
export DEPOT_SITE_ROOT="$PWD/target/site"
e2e_db="depot_e2e_$$"
e2e_logs="$(mktemp -d)"
browsers=""
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $e2e_db"
# The Rust tests' databases are dropped by the tests, several at a time
# (server/tests/api/helpers.rs); the last few they left are dropped here.
drop_done_test_databases() {
  psql -qtA -h 127.0.0.1 -U postgres -d postgres -c "SELECT d.datname FROM pg_database d
      JOIN pg_shdescription s ON s.objoid = d.oid AND s.classoid = 'pg_database'::regclass
      WHERE s.description = 'depot test: done'" |
    {
      # All at once, so that they share PostgreSQL's checkpoints.
      while read -r name; do
        psql -q -h 127.0.0.1 -U postgres -d postgres \
          -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" &
      done
      wait
    }
}
# A process and every process below it, parents first (`timeout` puts what
# it runs in a process group of its own, so a group's kill would miss them).
process_tree() {
  local child
  echo "$1"
  for child in $(pgrep -P "$1"); do process_tree "$child"; done
}
# On the way out, whatever stopped the run: browser runs still going (a
# failed build) are ended, so that nothing holds the run's output open.
clean_up() {
  # Listed, then ended at once, the runs first: none starts anything more.
  [ -z "$browsers" ] || kill -TERM $(process_tree "$browsers") 2>/dev/null || true
  ! declare -F garage_stop >/dev/null || garage_stop
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $e2e_db WITH (FORCE)" || true
  drop_done_test_databases || true
  rm -rf "$e2e_logs"
}
trap clean_up EXIT
browser_tests() {
  local name="$1"
  shift
  (cd end2end && timeout 15m env "$@" npx playwright test --output "test-results/$name") \
    >"$e2e_logs/$name.log" 2>&1
}
# The two runs in turn.
(
  failed=""
  browser_tests sqlite DEPOT_E2E_PORT=3917 || failed+=" SQLite"
  browser_tests postgres DEPOT_E2E_PORT=3918 \
    DEPOT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$e2e_db" || failed+=" PostgreSQL"
  [ -z "$failed" ] || { echo "browser tests failed on:$failed" >"$e2e_logs/failed"; exit 1; }
) &
browsers=$!

step "starting a throw-away object store (Garage) for the tests"
source scripts/garage.sh

step "building the tests, the browser tests beside them"
# Every target (the benchmarks too), so clippy sees all of the code.
"${as_cargo_leptos[@]}" cargo test -p app -p depot-inspect -p depot-server --all-targets --no-run

step "unit and integration tests (SQLite, PostgreSQL, PostgreSQL with the object store), the browser tests beside them"
# They take about five minutes. With cargo-nextest (.config/nextest.toml) a test
# that hangs is stopped and retried; either way a hung run fails here rather
# than holding CI until its own limit.
# Two tests a core: many wait (on a server, a database, a timer) a good part
# of their time; on 2 cores, 138 s against 175 s with one a core, the CPU
# idle 7% of the time against 21%.
rust_failed=""
if cargo nextest --version >/dev/null 2>&1; then
  timeout 20m "${as_cargo_leptos[@]}" cargo nextest run -p app -p depot-inspect -p depot-server \
    --test-threads "$(($(nproc) * 2))" || rust_failed=1
else
  timeout 20m "${as_cargo_leptos[@]}" cargo test -p app -p depot-inspect -p depot-server || rust_failed=1
fi

step "browser tests (Playwright, headless Chromium), on SQLite then on PostgreSQL"
browsers_failed=""
wait "$browsers" || browsers_failed=1
browsers=""
for name in sqlite postgres; do
  if [ -f "$e2e_logs/$name.log" ]; then
    step "browser tests on $name"
    cat "$e2e_logs/$name.log"
  fi
done
[ ! -f "$e2e_logs/failed" ] || cat "$e2e_logs/failed" >&2
if [ -n "$rust_failed" ] || [ -n "$browsers_failed" ]; then
  echo "tests failed" >&2
  exit 1
fi
step "every test passed"
