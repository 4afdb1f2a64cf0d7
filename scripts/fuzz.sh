#!/usr/bin/env bash
# Fuzzes the image inspector (depot-inspect) with cargo-fuzz: each target runs
# for FUZZ_SECONDS (default 120) on the nightly toolchain. Not part of CI.
# What a run finds is in fuzz/artifacts/<target>/: fix it in inspect/src and
# keep the input as a unit test there.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds="${FUZZ_SECONDS:-120}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

# Seeds: the unit tests' vectors are in the code; a few real files help too.
seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
if command -v qemu-img >/dev/null 2>&1; then
  for format in qcow2 vmdk vpc vhdx qed; do
    qemu-img create -q -f "$format" "$seeds/disk.$format" 1M || true
  done
  qemu-img create -q -f vmdk -o subformat=streamOptimized "$seeds/stream.vmdk" 1M || true
fi

cd fuzz
for target in inspect_stream detect_disk parse_ovf; do
  mkdir -p "corpus/$target"
  cp -n "$seeds"/* "corpus/$target/" 2>/dev/null || true
  echo "==> fuzzing $target for ${seconds}s"
  cargo +nightly fuzz run --sanitizer none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=2097152 -rss_limit_mb=2048
done
