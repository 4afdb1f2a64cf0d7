#!/usr/bin/env bash
# Installs what building and testing Depot needs, each tool only when it is
# missing or at the wrong version, so a warm machine spends seconds here.
# Sourced by the other scripts (run, test, bench, fuzz); safe to run on its own.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
# One build cache outside the clone, shared by every checkout on this machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/depot/target}"

# Each step is stamped with the time since the script began, so a CI log shows
# where a run's minutes go.
step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }

# A process and every process below it, parents first, each stopped as it
# is listed so that none starts another meanwhile (`timeout` puts what it
# runs in a process group of its own, so a group's kill would miss them).
stopped_tree() {
  local child
  kill -STOP "$1" 2>/dev/null || return 0
  echo "$1"
  for child in $(pgrep -P "$1"); do stopped_tree "$child"; done
}
# Ends the processes of a tree (a build or a test run in the background),
# given a few seconds to do it cleanly.
end_tree() {
  local pids
  pids="$(stopped_tree "$1")"
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086 # one argument a process
  {
    kill -TERM $pids 2>/dev/null
    kill -CONT $pids 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 $pids 2>/dev/null || return 0
      sleep 0.5
    done
    kill -KILL $pids 2>/dev/null
  } || true
}
# cargo-leptos builds the server with this environment; giving cargo test,
# clippy and bench the same one lets them reuse its compiled artifacts (leptos
# reads LEPTOS_OUTPUT_NAME at compile time, and RUSTFLAGS is part of every
# hash: a `cargo bench` without it rebuilt the whole release tree). Not
# exported: cargo-leptos appends its own RUSTFLAGS to an inherited one. The
# values are those of `[[workspace.metadata.leptos]]` in Cargo.toml.
as_cargo_leptos=(env RUSTFLAGS="--cfg erase_components"
  LEPTOS_OUTPUT_NAME=depot LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg
  LEPTOS_SITE_ADDR=127.0.0.1:3000 LEPTOS_RELOAD_PORT=3001 LEPTOS_LIB_DIR=frontend
  LEPTOS_BIN_DIR=server LEPTOS_HASH_FILES=false LEPTOS_JS_MINIFY=false)

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32 target"
  rustup target add wasm32-unknown-unknown
fi

# test.sh lints with clippy-driver as it builds.
# (grep reads every line: with -q, rustup could die writing and fail the pipe.)
if ! rustup component list --installed | grep '^clippy' >/dev/null; then
  step "adding clippy"
  rustup component add clippy
fi

# The standard library's source, which the release WASM bundle is built with
# (build_release below).
if ! rustup component list --installed | grep '^rust-src' >/dev/null; then
  step "adding rust-src"
  rustup component add rust-src
fi

# 0.3.11 does not build on Rust 1.95; --locked keeps its dependencies at versions that do.
if [ "$(cargo leptos --version 2>/dev/null)" != "cargo-leptos 0.3.10" ]; then
  step "installing cargo-leptos 0.3.10 (about 20 minutes, once per machine)"
  cargo install cargo-leptos@0.3.10 --locked
fi

# cargo-nextest runs the Rust tests (.config/nextest.toml: a hung test stopped
# and retried, each test a process of its own, which the memory tests read).
if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# wasm-bindgen's CLI must match the crate in Cargo.lock exactly.
wasm_bindgen_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$repo/Cargo.lock")"
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wasm_bindgen_version" ]; then
  step "installing wasm-bindgen-cli $wasm_bindgen_version"
  # Without --locked: its own lock pins a crate the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$wasm_bindgen_version"
fi

# Chromium's headless shell for the browser tests (the browser without its
# windowing layers, which Playwright itself runs headless: the browser tests
# took 58 s of CPU with it, 107 s with the full Chromium in headless mode);
# rclone, a real WebDAV client, for the store's; qemu-img, genisoimage and
# parted make the disk images the inspection tests upload.
missing_packages=()
command -v chromium-headless-shell >/dev/null 2>&1 || missing_packages+=(chromium-headless-shell)
command -v rclone >/dev/null 2>&1 || missing_packages+=(rclone)
command -v qemu-img >/dev/null 2>&1 || missing_packages+=(qemu-utils)
command -v genisoimage >/dev/null 2>&1 || missing_packages+=(genisoimage)
command -v parted >/dev/null 2>&1 || missing_packages+=(parted)
if [ "${#missing_packages[@]}" -gt 0 ]; then
  step "installing ${missing_packages[*]} from Debian's packages"
  apt-get update
  apt-get install -y "${missing_packages[@]}"
fi

# Playwright (the test runner only: it uses Debian's Chromium) and binaryen's
# wasm-opt for release builds, at the versions of the committed lock file.
if ! (cd "$repo/end2end" && npm ls --silent >/dev/null 2>&1); then
  step "installing the npm packages of end2end/"
  (cd "$repo/end2end" && npm ci --no-audit --no-fund)
fi
export PATH="$repo/end2end/node_modules/.bin:$PATH"

# Python tools the tests run, each pinned in end2end/<name>/requirements.txt
# and installed into a virtualenv of its own when that file changed.
python_tool() {
  local name="$1" venv="$HOME/.cache/depot/$1-venv"
  if ! cmp -s "$repo/end2end/$name/requirements.txt" "$venv/requirements.txt"; then
    step "installing $name into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      -r "$repo/end2end/$name/requirements.txt"
    cp "$repo/end2end/$name/requirements.txt" "$venv/requirements.txt"
  fi
}
# The official VSS client, and the tus project's Python client.
python_tool pyvss
export DEPOT_PYVSS_PYTHON="$HOME/.cache/depot/pyvss-venv/bin/python"
# schemathesis, the OpenAPI fuzzer the API documents are checked with.
python_tool schemathesis
export DEPOT_SCHEMATHESIS="$HOME/.cache/depot/schemathesis-venv/bin/st"

# The integration tests create their own databases on the local PostgreSQL.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  step "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi

# The release build, which run.sh serves and bench.sh measures: the server as
# cargo-leptos builds it, and a WASM bundle built for size (the main WASM
# 281.7 -> 238.5 KB as brotli, with the changes in the UI's code beside it).
# The standard library is compiled with the bundle rather than taken
# prebuilt (`-Zbuild-std`), at the bundle's opt-level "z" and with its
# `optimize_for_size` algorithms; a panic aborts on the spot
# (`-Cpanic=immediate-abort`) instead of formatting a message no one sees,
# since the bundle already aborts on panic; and panics keep no source
# locations (`-Zlocation-detail=none`). These flags are unstable, which a
# stable toolchain takes only with RUSTC_BOOTSTRAP=1. That is set for this
# one build, in a target folder of its own: the server and every other
# build never see it (proc-macro2's build script, for one, turns on nightly
# APIs for every proc macro when it does). Should a later toolchain refuse
# a flag, the plain release bundle is built instead, with a warning.
# The two builds run side by side: from cold, 10 min 29 s against 10 min 48 s
# in turn (2026-12-05). The server's build ends in 138 s of its 442 s with
# one unit at work (`app`, then the server crate), which the bundle's build
# fills where code generation leaves a core free; the cores are busy from
# start to end either way, so it is not the bundle's 3 minutes. (Tried on
# 2026-12-03, when thin LTO still kept both cores busy at the server's end,
# it gained nothing.) The bundle's output is printed once the server is built.
# `-Zfmt-debug=none` would take 5 KB more, but it empties every `Debug`
# output, and leptos_router and tachys name things with it.
build_release() {
  local bundle_log bundle
  bundle_log="$(mktemp)"
  build_release_bundle >"$bundle_log" 2>&1 &
  bundle=$!
  # Background commands ignore Ctrl-C: the bundle's build is ended with
  # the server's, however that ends.
  trap "end_tree $bundle; rm -f '$bundle_log'; exit 130" INT TERM
  if ! cargo leptos build --release --precompress --split --server-only; then
    end_tree "$bundle"
    trap - INT TERM
    rm -f "$bundle_log"
    return 1
  fi
  step "the WASM bundle, built beside the server"
  local bundle_status=0
  wait "$bundle" || bundle_status=$?
  trap - INT TERM
  cat "$bundle_log" >&2
  rm -f "$bundle_log"
  return "$bundle_status"
}
build_release_bundle() {
  if ! env RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$CARGO_TARGET_DIR/wasm-for-size" \
    RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" \
    cargo leptos build --release --precompress --split --frontend-only \
    --lib-cargo-args=-Zbuild-std=std,panic_abort \
    --lib-cargo-args=-Zbuild-std-features=optimize_for_size; then
    printf '\nwarning: this toolchain would not build the WASM bundle for size; building it plainly\n' >&2
    cargo leptos build --release --precompress --split --frontend-only
  fi
}
