# Real clients (skopeo, podman, buildah) on content built here with umoci.
# Sourced by run.sh, which defines: url host ns work store check ok bad py.

layout="$work/oci"
reg="$host/$ns"
sk=(skopeo --insecure-policy)
tls=(--src-tls-verify=false --dest-tls-verify=false)

# Deterministic content: busybox-static in a one-layer image, an arm64 variant,
# a two-platform index over both, and an image with a 64 MiB layer.
build_content() {
  umoci init --layout "$layout"
  umoci new --image "$layout:base"
  umoci config --image "$layout:base" --tag base --created 2020-01-01T00:00:00Z --os linux --architecture amd64
  umoci unpack --image "$layout:base" "$work/bundle"
  mkdir -p "$work/bundle/rootfs/bin"
  cp "$(command -v busybox)" "$work/bundle/rootfs/bin/busybox"
  ln -s busybox "$work/bundle/rootfs/bin/sh"
  find "$work/bundle/rootfs" -exec touch -h -d @946684800 {} +
  umoci repack --history.created 2020-01-01T00:00:00Z --history.created_by "berth conformance" --image "$layout:busybox" "$work/bundle"
  umoci config --image "$layout:busybox" --tag busybox --config.cmd /bin/sh --created 2020-01-01T00:00:00Z --no-history
  umoci config --image "$layout:busybox" --tag busybox-arm64 --architecture arm64 --created 2020-01-01T00:00:00Z --no-history
  "$py" "$(dirname "${BASH_SOURCE[0]}")/content.py" "$layout" busybox busybox-arm64
  umoci unpack --image "$layout:busybox" "$work/bundle-big"
  "$py" -c 'import random,sys; open(sys.argv[1],"wb").write(random.Random(64).randbytes(64<<20))' "$work/bundle-big/rootfs/weights.bin"
  touch -d @946684800 "$work/bundle-big/rootfs/weights.bin"
  umoci repack --history.created 2020-01-01T00:00:00Z --history.created_by "berth conformance" --image "$layout:big" "$work/bundle-big"
}
check "content: busybox image, two-platform index and 64 MiB layer built with umoci" build_content

local_digest() { # the manifest digest a layout tag points at
  jq -r --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$layout/index.json"
}
remote_digest() {
  "${sk[@]}" inspect --tls-verify=false --raw "docker://$1" | sha256sum | awk '{print "sha256:" $1}'
}

# skopeo: push by tag, pull by tag and by digest, digests compared.
skopeo_roundtrip() {
  "${sk[@]}" copy "${tls[@]}" "oci:$layout:busybox" "docker://$reg/busybox:1.0"
  local want; want=$(local_digest busybox)
  [ "$(remote_digest "$reg/busybox:1.0")" = "$want" ]
  "${sk[@]}" copy "${tls[@]}" "docker://$reg/busybox:1.0" "oci:$work/pull-tag:x"
  [ "$(jq -r '.manifests[0].digest' "$work/pull-tag/index.json")" = "$want" ]
  "${sk[@]}" copy "${tls[@]}" "docker://$reg/busybox@$want" "oci:$work/pull-digest:x"
  [ "$(jq -r '.manifests[0].digest' "$work/pull-digest/index.json")" = "$want" ]
  for layer in $(jq -r '.layers[].digest' "$layout/blobs/sha256/${want#sha256:}"); do
    cmp "$layout/blobs/sha256/${layer#sha256:}" "$work/pull-digest/blobs/sha256/${layer#sha256:}"
  done
}
check "skopeo: push by tag, pull by tag and by digest, digests and layers identical" skopeo_roundtrip

multi_arch() {
  "${sk[@]}" copy --all "${tls[@]}" "oci:$layout:multi" "docker://$reg/multi:1.0"
  [ "$(remote_digest "$reg/multi:1.0")" = "$(local_digest multi)" ]
  "${sk[@]}" inspect --tls-verify=false --raw "docker://$reg/multi:1.0" | jq -e '.manifests | length == 2'
  "${sk[@]}" --override-arch arm64 copy "${tls[@]}" "docker://$reg/multi:1.0" "oci:$work/pull-arm:x"
  [ "$(jq -r '.manifests[0].digest' "$work/pull-arm/index.json")" = "$(local_digest busybox-arm64)" ]
}
check "skopeo: two-platform index pushed with --all, arm64 picked on pull" multi_arch

big_layer() {
  "${sk[@]}" copy "${tls[@]}" "oci:$layout:big" "docker://$reg/big:1.0"
  "${sk[@]}" copy "${tls[@]}" "docker://$reg/big:1.0" "oci:$work/pull-big:x"
  local m; m=$(local_digest big)
  [ "$(jq -r '.manifests[0].digest' "$work/pull-big/index.json")" = "$m" ]
  for layer in $(jq -r '.layers[].digest' "$layout/blobs/sha256/${m#sha256:}"); do
    cmp "$layout/blobs/sha256/${layer#sha256:}" "$work/pull-big/blobs/sha256/${layer#sha256:}"
  done
}
check "skopeo: image with a 64 MiB layer round-trips byte for byte" big_layer

# A copy between two repositories of one registry must mount, not re-upload.
cross_mount() {
  "${sk[@]}" --debug copy "${tls[@]}" "docker://$reg/busybox:1.0" "docker://$reg/busybox-copy:1.0" >"$work/copy.log" 2>&1
  # Every layer is mounted from the source repository, none uploaded again.
  local layers mounted
  layers=$(jq -r '.layers | length' "$layout/blobs/sha256/$(local_digest busybox | cut -d: -f2)")
  mounted=$(grep -c 'mount OK' "$work/copy.log" || true)
  [ "$mounted" -ge "$layers" ] || { echo "$mounted of $layers layers mounted"; return 1; }
  [ "$(remote_digest "$reg/busybox-copy:1.0")" = "$(local_digest busybox)" ]
}
check "skopeo: copy between repositories uses cross-repository mounts" cross_mount

podman_roundtrip() {
  podman "${store[@]}" pull --tls-verify=false "$reg/busybox:1.0"
  podman "${store[@]}" tag "$reg/busybox:1.0" "$reg/podman-pushed:1.0"
  podman "${store[@]}" push --tls-verify=false "$reg/podman-pushed:1.0"
  "${sk[@]}" inspect --tls-verify=false "docker://$reg/podman-pushed:1.0" | jq -e '.Layers | length == 1'
}
check "podman: pull by tag, push under a new name" podman_roundtrip

buildah_layer() {
  local ctr
  ctr=$(buildah "${store[@]}" from --tls-verify=false "$reg/busybox:1.0")
  echo "built by buildah for $ns" >"$work/hello.txt"
  buildah "${store[@]}" add "$ctr" "$work/hello.txt" /hello.txt
  buildah "${store[@]}" commit "$ctr" "$reg/built:1.0"
  buildah "${store[@]}" push --tls-verify=false "$reg/built:1.0"
  "${sk[@]}" inspect --tls-verify=false "docker://$reg/built:1.0" | jq -e '.Layers | length == 2'
}
check "buildah: build a layer on top of a pulled image and push it" buildah_layer

tags_and_delete() {
  "${sk[@]}" copy "${tls[@]}" "docker://$reg/busybox:1.0" "docker://$reg/busybox:1.1"
  "${sk[@]}" list-tags --tls-verify=false "docker://$reg/busybox" | jq -e '.Tags == ["1.0", "1.1"]'
  "${sk[@]}" delete --tls-verify=false "docker://$reg/busybox-copy:1.0"
  if "${sk[@]}" inspect --tls-verify=false --raw "docker://$reg/busybox-copy:1.0" 2>/dev/null; then echo "still there after delete"; return 1; fi
}
check "skopeo: tag listing and delete through the client" tags_and_delete

# Berth releases: promote and roll back an environment tag, read back by skopeo
# pulling repo:production by tag (CNCF Distribution has no such API).
release_round_trip() {
  local api="$url/api/v1/repositories/$ns/release" v1 v2
  "${sk[@]}" copy "${tls[@]}" "oci:$layout:busybox" "docker://$reg/release:1.0"
  "${sk[@]}" copy "${tls[@]}" "oci:$layout:busybox-arm64" "docker://$reg/release:2.0"
  v1=$(local_digest busybox)
  v2=$(local_digest busybox-arm64)
  curl -fsS -X POST -H 'Content-Type: application/json' -d '{"reference":"1.0","to":"production"}' "$api/promote"
  [ "$(remote_digest "$reg/release:production")" = "$v1" ]
  curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"reference\":\"2.0\",\"to\":\"production\",\"expect\":\"$v1\",\"reason\":\"conformance\"}" "$api/promote"
  "${sk[@]}" --override-arch arm64 copy "${tls[@]}" "docker://$reg/release:production" "oci:$work/pull-prod:x"
  [ "$(jq -r '.manifests[0].digest' "$work/pull-prod/index.json")" = "$v2" ]
  curl -fsS -X POST -H 'Content-Type: application/json' -d '{"tag":"production"}' "$api/rollback"
  [ "$(remote_digest "$reg/release:production")" = "$v1" ]
  curl -fsS "$api/tags/production/history" | jq -e '[.history[].operation] == ["rollback", "promote", "promote"]'
}
check "berth releases: promote, promote with expect, rollback; skopeo pulls production each time" release_round_trip
