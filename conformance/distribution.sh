#!/usr/bin/env bash
# conformance/distribution.sh: runs run.sh against CNCF Distribution 2.8.2
# (Debian's docker-registry), started here on a free loopback port with a
# temporary filesystem store and deletes enabled. Shows that the suite can fail.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v docker-registry >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q docker-registry >/dev/null
fi
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
"$here/run.sh" "http://127.0.0.1:$port"
