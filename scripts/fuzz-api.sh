#!/usr/bin/env bash
# Fuzzes Depot's API documents with schemathesis for longer than the test
# command does: DEPOT_FUZZ_EXAMPLES examples per operation (500 unless set).
# (scripts/fuzz.sh fuzzes the image inspector with cargo-fuzz.)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
# Built as test.sh builds the tests (the `bench` profile, cargo-leptos's
# environment), so that it reuses that build's dependencies (Depot's own
# crates are compiled again: test.sh lints them as it builds them).
DEPOT_FUZZ_EXAMPLES="${DEPOT_FUZZ_EXAMPLES:-500}" \
  "${as_cargo_leptos[@]}" cargo nextest run --cargo-profile bench -p depot-server --test api \
  -E 'test(/^fuzz::/)' --no-capture
