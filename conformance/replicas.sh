#!/usr/bin/env bash
# conformance/replicas.sh BERTH_BINARY: three stateless replicas on one
# PostgreSQL database and one S3 bucket, behind nginx round-robin
# (replicas.py): the whole conformance suite through nginx, visibility of
# writes across replicas, racing promotions and tag moves, ordered events,
# webhooks from one leader, kill -9 of replicas and of the leader mid-GC,
# PostgreSQL going away. Needs an S3 server at $TEST_S3_ENDPOINT (test.sh
# starts one); installs nginx and PostgreSQL (Debian) and starts its own of
# each on loopback. Ends with "N passed, N failed".
set -uo pipefail

berth=$(realpath "${1:?usage: conformance/replicas.sh BERTH_BINARY}")
s3=${TEST_S3_ENDPOINT:?the replicas need an S3 server: set TEST_S3_ENDPOINT (test.sh does)}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
chmod 755 "$work"
pg_ctl=()
nginx_pid=
cleanup() {
  [ -z "$nginx_pid" ] || kill "$nginx_pid" 2>/dev/null
  [ ${#pg_ctl[@]} -eq 0 ] || "${pg_ctl[@]}" -m immediate stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
. "$here/suite.sh"
. "$here/postgres.sh"
# nginx's package would start a server of its own on port 80: tell
# invoke-rc.d not to, for the install only.
if ! command -v nginx >/dev/null 2>&1 && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  install_missing nginx:nginx
  rm -f /usr/sbin/policy-rc.d
fi
install_missing nginx:nginx curl:curl
venv=${REPLICAS_VENV:-$HOME/.cache/berth-replicas-venv}
if ! "$venv/bin/python" -c 'import requests' 2>/dev/null; then
  echo "# installing requests into $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q 'requests==2.32.5' \
    >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; echo "0 passed, 1 failed"; exit 1; }
fi
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_postgres "$work/postgres" "$(free_port)" || { echo "0 passed, 1 failed"; exit 1; }
bucket="replicas-$(date +%s)-$RANDOM"
curl -fsS -X PUT "$s3/$bucket" >/dev/null || { echo "no S3 at $s3"; echo "0 passed, 1 failed"; exit 1; }

# nginx: round-robin over the replicas, streaming bodies both ways.
ports=()
for _ in 1 2 3; do ports+=("$(free_port)"); done
echo "${ports[*]}" >"$work/ports"
lb=$(free_port)
mkdir -p "$work/nginx/tmp" && chmod 777 "$work/nginx/tmp"
{
  echo "worker_processes 1; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log;"
  echo "events { worker_connections 1024; }"
  echo "http {"
  echo "  access_log off; client_body_temp_path $work/nginx/tmp; proxy_temp_path $work/nginx/tmp;"
  echo "  upstream berth {"
  for p in "${ports[@]}"; do echo "    server 127.0.0.1:$p max_fails=1 fail_timeout=2s;"; done
  echo "    keepalive 32;"
  echo "  }"
  echo "  server {"
  echo "    listen 127.0.0.1:$lb;"
  echo "    client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;"
  echo "    proxy_http_version 1.1; proxy_set_header Connection \"\";"
  echo "    proxy_set_header Host \$http_host; proxy_read_timeout 300s;"
  echo "    location / { proxy_pass http://berth; }"
  echo "  }"
  echo "}"
} >"$work/nginx/nginx.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>"$work/nginx/stderr" &
nginx_pid=$!

export REPLICAS_PG_URL="$pg_url" REPLICAS_S3="$s3" REPLICAS_BUCKET="$bucket" REPLICAS_LB_PORT="$lb"
REPLICAS_PG_CTL=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${pg_ctl[@]}")
export REPLICAS_PG_CTL
(cd "$here" && "$venv/bin/python" replicas.py "$berth" "$work") >"$work/results" 2>&1
status=$?
cat "$work/results"
passed=$(grep -c '^ok ' "$work/results")
failed=$(grep -c '^FAIL ' "$work/results")
if [ $status -ne 0 ]; then
  failed=$((failed + 1))
  echo "FAIL replicas.py stopped ($status); the replicas' logs end:"; tail -n 5 "$work"/replica*.log
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
