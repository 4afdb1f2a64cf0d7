#!/usr/bin/env bash
# Builds Depot in release and serves it on http://127.0.0.1:3000 with the
# embedded defaults: SQLite and the blob store under ./data, and the demo
# catalog in an empty database (DEPOT_DEMO=false leaves it out). Flags are
# passed on to `depot serve` (see `depot serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

step "building Depot (release)"
build_release

step "starting Depot"
export DEPOT_DEMO="${DEPOT_DEMO:-true}"
exec "$CARGO_TARGET_DIR/release/depot" serve --site-root "$PWD/target/site" "$@"
