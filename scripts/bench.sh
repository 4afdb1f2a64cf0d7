#!/usr/bin/env bash
# Runs every performance figure of Depot beside its reference, measured on
# this machine in this run, and prints the ratios:
#   catalog   reads (one at a time and from 16 connections) and writes (4
#             clients) beside the same SQL sent straight through sqlx, with
#             the plans, and the server's memory idle and under load; on
#             SQLite, then on PostgreSQL;
#   transfer  1 GiB uploads beside `dd conv=fdatasync`, downloads beside
#             nginx, the server's memory during them;
#   login     a flood of wrong passwords beside a working token user;
#   browser   what a browser downloads, as sent.
# Everything runs against the release build that scripts/run.sh serves.
# DEPOT_BENCH_BYTES, DEPOT_BENCH_IMAGES and DEPOT_BENCH_SECONDS shrink a run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  step "installing nginx, the downloads' reference, from Debian's packages"
  apt-get update
  apt-get install -y nginx-light
  # The benchmark starts its own; the package's service is not wanted.
  service nginx stop >/dev/null 2>&1 || true
fi

step "building Depot (release, precompressed)"
build_release
# What is measured is a link of its own to the binary just built: a test
# run or `cargo leptos watch` meanwhile writes target/release/depot too, in
# the `bench` profile, unoptimised (Cargo.toml).
bench_tmp="$(mktemp -d)"
bench_db=""
clean_up() {
  [ -z "$bench_db" ] ||
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $bench_db WITH (FORCE)"
  rm -rf "$bench_tmp"
}
trap clean_up EXIT
ln -f "$CARGO_TARGET_DIR/release/depot" "$bench_tmp/depot" 2>/dev/null ||
  cp "$CARGO_TARGET_DIR/release/depot" "$bench_tmp/depot"
export DEPOT_BENCH_BIN="$bench_tmp/depot"
export DEPOT_SITE_ROOT="$PWD/target/site"

step "catalog on SQLite"
"${as_cargo_leptos[@]}" env -u DEPOT_BENCH_DATABASE_URL cargo bench --profile release -p depot-server --bench catalog

step "catalog on PostgreSQL"
bench_db="depot_bench_$$"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $bench_db"
DEPOT_BENCH_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$bench_db" \
  "${as_cargo_leptos[@]}" cargo bench --profile release -p depot-server --bench catalog

step "uploads and downloads"
"${as_cargo_leptos[@]}" cargo bench --profile release -p depot-server --bench transfer

step "a flood of wrong passwords"
"${as_cargo_leptos[@]}" cargo bench --profile release -p depot-server --bench login_flood

step "what a browser downloads"
"${as_cargo_leptos[@]}" cargo bench --profile release -p depot-server --bench browser
