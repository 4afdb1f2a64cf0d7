#!/usr/bin/env bash
# Runs every test of Depot: formatting and lints, unit tests, integration tests
# against SQLite, PostgreSQL and PostgreSQL with an object store (Garage),
# and beside them the browser tests in Chromium's headless shell.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

# sqlx's proc macros compiled its drivers, SQLite's C with them, a second
# time for the build host: half a minute of CPU in a cold debug build, a
# minute in a release build (docs/performance-log.md, the fourteenth
# machine). sqlx's default features, `derive` or `macros`, turned on by
# Depot or by any crate it uses, bring them back.
step "no sqlx proc macro in the server's build"
macros="$(cargo tree -p depot-server -i sqlx-macros 2>/dev/null || true)"
if [ -n "$macros" ]; then
  printf '%s\n\nsqlx-macros is back in the build (above: what turns it on)\n' "$macros" >&2
  exit 1
fi

# Clippy lints the workspace's own crates as they are compiled for the tests
# (clippy-driver as cargo's wrapper for workspace members, which is what
# `cargo clippy` itself does), with every warning an error. A `cargo clippy`
# of its own would type-check every dependency again, once for the server
# and once for wasm32: 3 min 25 s of a cold run. Dependencies are compiled
# by rustc as before, so they are shared with the release build.
# setup.sh adds clippy when missing. A plain assignment first: without
# clippy-driver the run stops here rather than building unlinted.
clippy_driver="$(rustup which clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

# CI builds a fresh clone in a folder of its own. rustc's incremental state
# holds the folder it was built in (the working directory is among the
# options it checks, and `-Zremap-cwd-prefix` adds it to another), so
# there it finds only another folder's state and compiles Depot's crates
# from scratch: 124–146 s for the test build without keeping that state,
# 165–169 s keeping it (docs/performance-log.md, the thirty-third
# machine). A developer's checkout keeps it, for the next build.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
fi

# The server, and the tests after it, are built in the `bench` profile: every
# dependency as the release build compiles it, into the release build's
# folder, so that run.sh's release build after this reuses them; Depot's own
# crates unoptimised, as in a debug build (Cargo.toml, `[profile.bench.*]`).
# Both builds write target/release/depot, which the Rust tests that start a
# server run (`CARGO_BIN_EXE_depot`): a release build run meanwhile on the
# same build folder would have them start its binary instead.
step "building the UI (server and WASM) with cargo-leptos, linted by clippy"
cargo leptos build --split

step "starting a throw-away object store (Garage) for the tests"
# Before the browser tests: on a new machine this builds Garage first.
source scripts/garage.sh
trap garage_stop EXIT

# The browser tests start as soon as the server they drive is built, and run
# beside the test build and the Rust tests: each run waits on its browser
# and server much of the time, and started after the test build they ended
# last, the cores idle a tenth of the run. Each browser run has its own
# server, port, data and output folder; its report is printed whole once
# the Rust tests have ended, and they have ended too.
e2e_db="depot_e2e_$$"
e2e_logs="$(mktemp -d)"
browsers=""
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
# On the way out, whatever stopped the run: browser runs still going (a
# failed build) are ended, so that nothing is left holding a port or the
# run's output. The runs mark their end, so that a finished run's process
# number, which another process may have since, is left alone.
clean_up() {
  [ -z "$browsers" ] || [ -f "$e2e_logs/ended" ] || end_tree "$browsers"
  ! declare -F garage_stop >/dev/null || garage_stop
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $e2e_db WITH (FORCE)" || true
  drop_done_test_databases || true
  rm -rf "$e2e_logs"
}
trap clean_up EXIT
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $e2e_db"
# The browsers' server is a link to the one just built, so that whatever
# the test build does to the build's own, both runs serve this one.
ln -f "$CARGO_TARGET_DIR/release/depot" "$e2e_logs/depot" 2>/dev/null ||
  cp "$CARGO_TARGET_DIR/release/depot" "$e2e_logs/depot"
export DEPOT_BIN="$e2e_logs/depot"
export DEPOT_SITE_ROOT="$PWD/target/site"
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
  [ -z "$failed" ] || echo "browser tests failed on:$failed" >"$e2e_logs/failed"
  touch "$e2e_logs/ended"
  [ -z "$failed" ]
) &
browsers=$!

step "building the tests, the browser tests beside them"
# Every target (the benchmarks too), so clippy sees all of the code.
"${as_cargo_leptos[@]}" cargo test --profile bench -p app -p depot-inspect -p depot-server --all-targets --no-run

step "unit and integration tests (SQLite, PostgreSQL, PostgreSQL with the object store), the browser tests beside them"
# They take about five minutes. With cargo-nextest (.config/nextest.toml, which
# setup.sh installs) a test that hangs is stopped and retried, each test runs
# in a process of its own, and a hung run fails here rather than holding CI
# until its own limit.
# Two tests a core: many wait (on a server, a database, a timer) a good part
# of their time; on 2 cores, 138 s against 175 s with one a core, the CPU
# idle 7% of the time against 21%.
rust_failed=""
timeout 20m "${as_cargo_leptos[@]}" cargo nextest run --cargo-profile bench \
  -p app -p depot-inspect -p depot-server \
  --test-threads "$(($(nproc) * 2))" || rust_failed=1

step "browser tests (Playwright, Chromium's headless shell), on SQLite then on PostgreSQL"
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
