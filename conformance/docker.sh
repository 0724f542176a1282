#!/usr/bin/env bash
# conformance/docker.sh URL: the Docker engine (Debian's docker.io) and
# containerd's ctr against the Berth at URL (http://127.0.0.1:port; Docker
# treats 127.0.0.0/8 as an insecure registry, so plain HTTP works; ctr is told
# --plain-http). Installs docker.io (which brings containerd) and
# busybox-static if missing, starts its own dockerd (vfs storage, no bridge, no
# iptables, data and exec roots in a temp dir) and its own containerd (root,
# state and socket in the temp dir, CRI off, native snapshotter), and stops
# them after. Ends with "N passed, N failed".
set -uo pipefail
url=${1:?usage: conformance/docker.sh http://127.0.0.1:port}
host=${url#http://}
host=${host%/}
ns="docker-$(date +%s)-$RANDOM"
reg="$host/$ns"
work=$(mktemp -d /tmp/berth-docker.XXXXXX)
cpid=
cleanup() {
  stop_pid "$dockerd_pid"
  stop_pid "$cpid"
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

. "$(dirname "$0")/suite.sh"
install_missing dockerd:docker.io containerd:containerd busybox:busybox-static jq:jq curl:curl
start_dockerd
d() { "$docker_bin" "$@"; }


# A base image from a busybox rootfs (docker import: no registry needed), and
# an image of two more layers on it (COPY only: the legacy builder runs no
# container for it).
build_images() {
  mkdir -p "$work/rootfs/bin" "$work/ctx"
  cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
  ln -s busybox "$work/rootfs/bin/sh"
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  d import "$work/rootfs.tar" berth-test/base:1
  head -c 300000 /dev/urandom >"$work/ctx/weights.bin"
  echo "v1" >"$work/ctx/version"
  printf 'FROM berth-test/base:1\nCOPY weights.bin /weights.bin\nCOPY version /version\n' >"$work/ctx/Dockerfile"
  d build -q -t berth-test/app:1 "$work/ctx"
  [ "$(d image inspect -f '{{len .RootFS.Layers}}' berth-test/app:1)" = 3 ]
}
check "docker: a three-layer image built offline (import + COPY)" build_images

repo_digest() { d image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$1" | grep "^$2@" | head -n1 | cut -d@ -f2; }

push_pull() {
  d tag berth-test/app:1 "$reg/app:1"
  d push "$reg/app:1" | tee "$work/push.txt"
  local digest; digest=$(grep -o 'digest: sha256:[0-9a-f]*' "$work/push.txt" | cut -d' ' -f2)
  [ -n "$digest" ]
  # The registry serves exactly what docker pushed.
  [ "$(curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "$url/v2/$ns/app/manifests/1" | sha256sum | cut -d' ' -f1)" = "${digest#sha256:}" ]
  d rmi "$reg/app:1" berth-test/app:1 >/dev/null
  d pull "$reg/app:1"
  d pull "$reg/app@$digest"
  [ "$(repo_digest "$reg/app:1" "$reg/app")" = "$digest" ]
  [ "$(d image inspect -f '{{len .RootFS.Layers}}' "$reg/app:1")" = 3 ]
  echo "$digest" >"$work/app.digest"
}
check "docker: push a multi-layer image by tag, pull it by tag and by digest" push_pull

layer_reuse() {
  echo "v2" >"$work/ctx/version"
  d build -q -t "$reg/app:2" "$work/ctx"
  d push "$reg/app:2" | tee "$work/push2.txt"
  # Base and weights were pushed with :1: only the new layer goes up.
  [ "$(grep -c 'Layer already exists' "$work/push2.txt")" -ge 2 ]
  [ "$(grep -c 'Pushed' "$work/push2.txt")" -eq 1 ]
}
check "docker: a second version reuses the layers already pushed" layer_reuse

cross_mount() {
  d tag "$reg/app:2" "$reg/other:2"
  d push "$reg/other:2" | tee "$work/push3.txt"
  grep -q "Mounted from $ns/app" "$work/push3.txt"
  ! grep -q 'Pushed' "$work/push3.txt"
}
check "docker: pushing to another repository mounts the layers instead of uploading" cross_mount

manifest_list() {
  d manifest create --insecure "$reg/list:1" "$reg/app:1" "$reg/app:2"
  d manifest annotate "$reg/list:1" "$reg/app:2" --os linux --arch arm64
  d manifest push --insecure "$reg/list:1"
  local list
  list=$(curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' "$url/v2/$ns/list/manifests/1")
  [ "$(echo "$list" | jq -r .mediaType)" = application/vnd.docker.distribution.manifest.list.v2+json ]
  [ "$(echo "$list" | jq '.manifests | length')" = 2 ]
  [ "$(echo "$list" | jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest')" \
    = "$(repo_digest "$reg/app:2" "$reg/app")" ]
  d manifest inspect --insecure "$reg/list:1" | jq -e '.manifests | length == 2'
}
check "docker: a manifest list made with docker manifest create and pushed" manifest_list

# --- containerd's ctr: its own daemon, pulling what docker pushed -----------
mkdir -p "$work/ctrd"
printf 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' >"$work/ctrd/config.toml"
containerd --config "$work/ctrd/config.toml" --root "$work/ctrd/root" --state "$work/ctrd/state" \
  --address "$work/ctrd/ctrd.sock" >"$work/ctrd/log" 2>&1 &
cpid=$!
c() { ctr -a "$work/ctrd/ctrd.sock" -n berth "$@"; }
for _ in $(seq 1 100); do c version >/dev/null 2>&1 && break; sleep 0.1; done
image_digest() { c images ls | awk -v r="$1" '$1 == r { print $3 }'; }

ctr_pull() {
  local digest; digest=$(cat "$work/app.digest")
  c images pull --plain-http --snapshotter native "$reg/app:1"
  [ "$(image_digest "$reg/app:1")" = "$digest" ]
  c images pull --plain-http --snapshotter native "$reg/app@$digest"
  [ "$(image_digest "$reg/app@$digest")" = "$digest" ]
  # Unpacked: the image's layers are a snapshot with the files docker put in.
  c images check | grep "$reg/app:1" | grep -q complete
}
check "ctr: pull by tag and by digest (plain HTTP), unpacked" ctr_pull

ctr_platform() {
  local arm; arm=$(repo_digest "$reg/app:2" "$reg/app")
  c images pull --plain-http --snapshotter native --platform linux/arm64 "$reg/list:1"
  # The list's arm64 entry was fetched: its manifest is in the content store.
  c content get "$arm" | jq -e '.layers | length == 3'
}
check "ctr: pull one platform of a manifest list" ctr_platform

ctr_push() {
  local digest; digest=$(cat "$work/app.digest")
  c images tag "$reg/app:1" "$reg/from-ctr:1"
  c images push --plain-http "$reg/from-ctr:1"
  [ "$(curl -fsSI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "$url/v2/$ns/from-ctr/manifests/1" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }')" = "$digest" ]
}
check "ctr: push an image to a new repository, the same digest served back" ctr_push

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
