#!/usr/bin/env bash
# Starts a throw-away Garage (an S3-compatible object store) for the tests and
# the transfer benchmark: one node on free loopback ports, its own key and
# bucket, its files in a temporary folder. Sourced (after setup.sh) by
# scripts/test.sh; it exports what the tests read:
#   DEPOT_TEST_S3_ENDPOINT, DEPOT_TEST_S3_BUCKET, DEPOT_TEST_S3_KEY_ID,
#   DEPOT_TEST_S3_SECRET, DEPOT_TEST_S3_REGION
# and stops Garage when the sourcing shell exits (`garage_stop`).
# Installs Garage once per machine (about 11 minutes).
set -euo pipefail

garage_version="2.5.0"
if ! garage --version 2>/dev/null | grep -qF "$garage_version"; then
  printf '\n==> %s\n' "installing Garage $garage_version (about 11 minutes, once per machine)" >&2
  cargo install garage --version "$garage_version" --locked
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

garage_dir="$(mktemp -d "${TMPDIR:-/tmp}/depot-garage.XXXXXX")"
garage_rpc_port="$(free_port)"
garage_s3_port="$(free_port)"
garage_admin_port="$(free_port)"
cat >"$garage_dir/garage.toml" <<EOF
metadata_dir = "$garage_dir/meta"
data_dir = "$garage_dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$garage_rpc_port"
rpc_public_addr = "127.0.0.1:$garage_rpc_port"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$garage_s3_port"

[admin]
api_bind_addr = "127.0.0.1:$garage_admin_port"
EOF

garage_cli() { garage -c "$garage_dir/garage.toml" "$@"; }

# Started directly, not through garage_cli: a function run in the background
# is a subshell, whose pid `$!` would be, and killing that left Garage running.
garage -c "$garage_dir/garage.toml" server >"$garage_dir/server.log" 2>&1 &
garage_pid=$!
garage_stop() {
  kill "$garage_pid" 2>/dev/null || true
  # Given five seconds to stop, then killed: a stop that hangs would hold
  # the run that sourced this until its own limit.
  for _ in $(seq 1 50); do
    kill -0 "$garage_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$garage_pid" 2>/dev/null || true
  wait "$garage_pid" 2>/dev/null || true
  rm -rf "$garage_dir"
}

for _ in $(seq 1 100); do
  garage_cli status >/dev/null 2>&1 && break
  sleep 0.1
done
garage_node="$(garage_cli status 2>/dev/null | awk '/^[0-9a-f]{16}/ { print $1; exit }')"
if [ -z "$garage_node" ]; then
  cat "$garage_dir/server.log" >&2
  garage_stop
  echo "Garage did not start" >&2
  exit 1
fi
garage_cli layout assign -z dc1 -c 10G "$garage_node" >/dev/null
garage_cli layout apply --version 1 >/dev/null
garage_cli bucket create depot-tests >/dev/null
garage_key="$(garage_cli key create depot-tests)"
garage_cli bucket allow --read --write --owner depot-tests --key depot-tests >/dev/null

export DEPOT_TEST_S3_ENDPOINT="http://127.0.0.1:$garage_s3_port"
export DEPOT_TEST_S3_BUCKET="depot-tests"
export DEPOT_TEST_S3_REGION="garage"
DEPOT_TEST_S3_KEY_ID="$(awk '/Key ID/ { print $NF; exit }' <<<"$garage_key")"
DEPOT_TEST_S3_SECRET="$(awk '/Secret key/ { print $NF; exit }' <<<"$garage_key")"
export DEPOT_TEST_S3_KEY_ID DEPOT_TEST_S3_SECRET
printf '\n==> %s\n' "Garage is serving S3 on $DEPOT_TEST_S3_ENDPOINT (bucket depot-tests)" >&2
