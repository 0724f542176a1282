#!/usr/bin/env bash
# conformance/deploy.sh BERTH_BINARY: the files in deploy/, each tested here.
#   - deploy/Containerfile is built with BuildKit on a Docker engine of our
#     own (suite.sh's start_dockerd), and run: healthy by its own health
#     check, running as uid 10001, docker pushes to it and pulls back. With no
#     registry to pull bases from, RUNTIME is a base made here (glibc and CA
#     certificates from this Debian machine, `docker import`) and BINARY an
#     imported /out tree holding the binary test.sh built, which skips the
#     Rust build stage (that stage needs a Rust image from a registry).
#   - deploy/compose.yaml passes `docker-compose config` and its service runs
#     (Debian's docker-compose; host networking, as no bridge exists here).
#   - deploy/compose.replicas.yaml passes `docker-compose config`; its three
#     replicas run (host networking) on a PostgreSQL of our own
#     (postgres.sh) and the S3 server at $TEST_S3_ENDPOINT (test.sh's),
#     behind nginx running deploy/nginx.conf (its upstream names pointed at
#     the replicas' ports): a push through nginx is read from each replica.
#   - deploy/kubernetes/*.yaml validate against the Kubernetes schemas
#     (kubernetes-validate, from PyPI).
#   - deploy/berth.service passes `systemd-analyze verify`.
#   - deploy/grafana-dashboard.json names only metrics the image serves.
# Ends with "N passed, N failed".
set -uo pipefail

berth=$(realpath "${1:?usage: conformance/deploy.sh BERTH_BINARY}")
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d)
containers=()
pg_ctl=()
nginx_pid=
cleanup() {
  for c in "${containers[@]}"; do "$docker_bin" rm -f "$c" >/dev/null 2>&1; done
  stop_pid "$dockerd_pid"
  umount "$work/docker/exec/netns/default" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
. "$here/suite.sh"
. "$here/postgres.sh"
chmod 755 "$work"
if ! command -v nginx >/dev/null 2>&1 && [ ! -e /usr/sbin/policy-rc.d ]; then
  # The package would start a server of its own on port 80: not for the install.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  install_missing nginx:nginx
  rm -f /usr/sbin/policy-rc.d
fi
install_missing dockerd:docker.io docker-compose:docker-compose systemd-analyze:systemd \
  curl:curl strip:binutils nginx:nginx
start_dockerd
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_healthy() {
  for _ in $(seq 1 120); do
    [ "$("$docker_bin" inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null)" = healthy ] && return 0
    sleep 0.5
  done
  "$docker_bin" logs "$1" 2>&1 | tail -5
  return 1
}

# --- bases made here -----------------------------------------------------------
make_bases() {
  local base="$work/base" out="$work/tree" lib
  mkdir -p "$base/etc/ssl/certs" "$base/tmp" "$out/out/usr/local/bin" "$out/out/data"
  chmod 1777 "$base/tmp"
  for lib in $(ldd "$berth" | grep -o '/[^ ]*'); do
    mkdir -p "$base$(dirname "$lib")"
    cp -L "$lib" "$base$lib"
  done
  cp /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/" 2>/dev/null || true
  printf 'root:x:0:0::/:/nonexistent\nberth:x:10001:10001::/data:/nonexistent\n' >"$base/etc/passwd"
  printf 'root:x:0:\nberth:x:10001:\n' >"$base/etc/group"
  tar -C "$base" -c . | "$docker_bin" import - berth-test/runtime:base
  strip -o "$out/out/usr/local/bin/berth" "$berth"
  chown 10001:10001 "$out/out/data"
  tar -C "$out" --numeric-owner -c . | "$docker_bin" import - berth-test/binary:local
}
check "bases: a glibc runtime and the built binary, imported" make_bases

build_image() {
  DOCKER_BUILDKIT=1 "$docker_bin" build -q -f "$root/deploy/Containerfile" \
    --build-arg RUNTIME=berth-test/runtime:base --build-arg BINARY=berth-test/binary:local \
    -t berth:test "$root"
}
check "Containerfile: builds with BuildKit" build_image

port=$(free_port)
run_image() {
  "$docker_bin" run -d --name berth-deploy --network host --health-interval 1s \
    -e BERTH_LISTEN="127.0.0.1:$port" -e BERTH_URL="http://127.0.0.1:$port" berth:test
  wait_healthy berth-deploy
  [ "$("$docker_bin" inspect -f '{{.Config.User}}' berth-deploy)" = 10001:10001 ]
  "$docker_bin" top berth-deploy -o pid,uid,args | grep -q ' 10001 .*berth serve'
  [ "$("$docker_bin" inspect -f '{{range $k, $v := .Config.Volumes}}{{$k}}{{end}}' berth-deploy)" = /data ]
}
containers+=(berth-deploy)
check "image: runs as uid 10001 with /data a volume, healthy by its own check" run_image

push_pull() {
  local ref="127.0.0.1:$port/deploy/base:1"
  "$docker_bin" tag berth-test/runtime:base "$ref"
  "$docker_bin" push "$ref"
  "$docker_bin" rmi "$ref"
  "$docker_bin" pull "$ref"
  curl -fsS "http://127.0.0.1:$port/v2/deploy/base/tags/list" | grep -q '"1"'
}
check "image: docker pushes to the container and pulls back" push_pull

dashboard() {
  local scrape names name
  scrape=$(curl -fsS "http://127.0.0.1:$port/metrics")
  # Webhook series exist only for configured webhooks (none here).
  names=$(grep -o 'berth_[a-z_]*' "$root/deploy/grafana-dashboard.json" | grep -v '^berth_webhook_' | sort -u)
  [ -n "$names" ]
  for name in $names; do
    grep -q "^$name" <<<"$scrape" || { echo "$name is not served"; return 1; }
  done
}
check "grafana dashboard: every metric it queries is served" dashboard

compose() {
  local cport up= project=berthdeploy
  cport=$(free_port)
  docker-compose -f "$root/deploy/compose.yaml" config -q
  # No bridge here: the resolved service on the host network, on a free
  # port (docker-compose 1.29 refuses published ports in host mode, so the
  # resolved file loses its `ports`; nothing else changes).
  export BERTH_IMAGE=berth:test BERTH_NETWORK_MODE=host \
    BERTH_LISTEN=127.0.0.1:$cport BERTH_URL=http://127.0.0.1:$cport
  docker-compose -f "$root/deploy/compose.yaml" config \
    | /usr/bin/python3 -c 'import sys, yaml
doc = yaml.safe_load(sys.stdin)
doc["services"]["berth"].pop("ports")
yaml.safe_dump(doc, sys.stdout)' >"$work/compose.host.yaml"
  docker-compose -p "$project" -f "$work/compose.host.yaml" up -d --no-build
  for _ in $(seq 1 100); do curl -fsS "$BERTH_URL/readyz" >/dev/null 2>&1 && { up=1; break; }; sleep 0.2; done
  docker-compose -p "$project" -f "$work/compose.host.yaml" down -v
  [ -n "$up" ]
}
check "compose: config is valid and the single-node service serves" compose

replicas() {
  local project=berthreplicas p1 p2 p3 lb digest body up b
  : "${TEST_S3_ENDPOINT:?the replicated layout needs an S3 server at TEST_S3_ENDPOINT (test.sh starts one)}"
  # check runs this in a subshell: what it starts, it stops on leaving.
  trap 'docker-compose -p '"$project"' -f "$work/compose.replicas.yaml" down -v >/dev/null 2>&1
        [ -z "$nginx_pid" ] || kill "$nginx_pid"
        [ ${#pg_ctl[@]} -eq 0 ] || "${pg_ctl[@]}" -m immediate stop >/dev/null' EXIT
  start_postgres "$work/postgres" "$(free_port)"
  b="deploy-$(date +%s)-$RANDOM"
  curl -fsS -X PUT "$TEST_S3_ENDPOINT/$b" >/dev/null
  docker-compose -f "$root/deploy/compose.replicas.yaml" config -q
  p1=$(free_port); p2=$(free_port); p3=$(free_port); lb=$(free_port)
  export BERTH_IMAGE=berth:test BERTH_NETWORK_MODE=host BERTH_METADATA_URL="$pg_url" \
    BERTH_S3_ENDPOINT="$TEST_S3_ENDPOINT" BERTH_S3_BUCKET="$b" BERTH_S3_ALLOW_HTTP=true \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    BERTH_REPLICA_1_LISTEN=127.0.0.1:$p1 BERTH_REPLICA_2_LISTEN=127.0.0.1:$p2 \
    BERTH_REPLICA_3_LISTEN=127.0.0.1:$p3
  # The replicas alone (PostgreSQL, S3 and nginx are this machine's).
  docker-compose -f "$root/deploy/compose.replicas.yaml" config \
    | /usr/bin/python3 -c 'import sys, yaml
doc = yaml.safe_load(sys.stdin)
doc["services"] = {k: v for k, v in doc["services"].items() if k.startswith("berth-")}
doc.pop("volumes", None)
yaml.safe_dump(doc, sys.stdout)' >"$work/compose.replicas.yaml"
  docker-compose -p "$project" -f "$work/compose.replicas.yaml" up -d --no-build
  sed -e "s/berth-1:5000/127.0.0.1:$p1/; s/berth-2:5000/127.0.0.1:$p2/; s/berth-3:5000/127.0.0.1:$p3/" \
    -e "s/listen 5000;/listen 127.0.0.1:$lb;/" "$root/deploy/nginx.conf" >"$work/nginx.conf"
  mkdir -p "$work/nginx"
  nginx -p "$work/nginx" -c "$work/nginx.conf" -g "daemon off; pid $work/nginx/pid; error_log $work/nginx/error.log;" &
  nginx_pid=$!
  for p in $p1 $p2 $p3 $lb; do
    up=
    for _ in $(seq 1 150); do curl -fsS "http://127.0.0.1:$p/readyz" >/dev/null 2>&1 && { up=1; break; }; sleep 0.2; done
    [ -n "$up" ] || { docker-compose -p "$project" -f "$work/compose.replicas.yaml" logs --tail 5; return 1; }
  done
  body='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}'
  curl -fsS -X POST --data-binary '{}' \
    "http://127.0.0.1:$lb/v2/deploy/app/blobs/uploads/?digest=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" >/dev/null
  curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "$body" "http://127.0.0.1:$lb/v2/deploy/app/manifests/v1" >/dev/null
  for p in $p1 $p2 $p3; do
    digest=$(curl -fsS -o /dev/null -w '%header{docker-content-digest}' \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$p/v2/deploy/app/manifests/v1")
    [ -n "$digest" ] || { echo "replica on $p does not have it"; return 1; }
  done
}
check "compose (replicas): three replicas on PostgreSQL and S3 behind deploy/nginx.conf" replicas

kube() {
  local venv=${DEPLOY_VENV:-$HOME/.cache/berth-deploy-venv}
  if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q 'kubernetes-validate==1.37.0'
  fi
  "$venv/bin/kubernetes-validate" --strict -k 1.31.0 "$root"/deploy/kubernetes/*.yaml
}
check "kubernetes: manifests validate against the schemas (strict)" kube

unit() {
  # A root holding the binary where ExecStart names it and systemd's own
  # units (verify needs sysinit.target and the rest); any warning fails.
  local dir="$work/systemd" out
  mkdir -p "$dir/usr/local/bin" "$dir/usr/lib" "$dir/etc/systemd/system"
  cp "$berth" "$dir/usr/local/bin/berth"
  cp -a /usr/lib/systemd "$dir/usr/lib/"
  cp "$root/deploy/berth.service" "$dir/etc/systemd/system/"
  out=$(systemd-analyze verify --root="$dir" "$dir/etc/systemd/system/berth.service" 2>&1)
  echo "$out"
  [ -z "$out" ]
}
check "systemd: the unit passes systemd-analyze verify" unit

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
