#!/usr/bin/env bash
# Runs every test: the Rust unit and integration tests, then the black-box
# conformance and real-client suite against a freshly started `berth serve`.
# Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")"

# The Rust tests run curl and openssl (TLS) and mount a tmpfs; install what a
# fresh machine lacks.
need=()
for tool in curl:curl openssl:openssl python3:python3; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

cargo test

if [ -x conformance/run.sh ]; then
  cargo build --release --bin berth
  data=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ./target/release/berth serve --listen "127.0.0.1:$port" --data-dir "$data" 2>"$data.log" &
  pid=$!
  trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data" "$data.log"' EXIT
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  conformance/run.sh "http://127.0.0.1:$port"
  conformance/auth.sh ./target/release/berth
fi
