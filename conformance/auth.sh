#!/usr/bin/env bash
# conformance/auth.sh BERTH_BINARY: real clients against a Berth with access
# control on (htpasswd users over Basic, then Bearer tokens; per-repository
# rules): skopeo login, push and pull, podman login and pull, docker login,
# push, pull and logout (its own dockerd), the oras SDK with credentials.
# Starts its own server on a free loopback port. Ends with "N passed, N failed".
set -uo pipefail
berth=${1:?usage: conformance/auth.sh path/to/berth}
berth=$(cd "$(dirname "$berth")" && pwd)/$(basename "$berth")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pid=
trap 'stop_pid "$pid"; stop_pid "$dockerd_pid"; rm -rf "$work"' EXIT

. "$here/suite.sh"
install_missing skopeo:skopeo podman:podman umoci:umoci htpasswd:apache2-utils curl:curl \
  dockerd:docker.io busybox:busybox-static
start_dockerd
d() { "$docker_bin" "$@"; }
# An image for docker to push: a busybox rootfs, imported (no registry needed).
mkdir -p "$work/rootfs/bin"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
d import "$work/rootfs.tar" berth-auth/base:1 >/dev/null
venv=${CONFORMANCE_VENV:-$HOME/.cache/berth-conformance-venv}
if ! "$venv/bin/python" -c 'import oras' 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q 'oras==0.2.43' >"$work/pip.log" 2>&1 \
    || { cat "$work/pip.log"; echo "0 passed, 1 failed"; exit 1; }
fi

htpasswd -cbB "$work/users" alice ecila >/dev/null 2>&1
htpasswd -bB "$work/users" bob bob-secret >/dev/null 2>&1
# start_berth MODE: a fresh server with Basic (MODE=basic) or Bearer tokens (MODE=token).
start_berth() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  local mode=$1
  rm -rf "$work/data" "$work"/*.json "$work/storage" "$work/run"
  cat >"$work/berth.toml" <<TOML
[auth]
htpasswd = "$work/users"
[[auth.rules]]
repositories = ["auth/**"]
users = ["alice"]
actions = ["pull", "push", "delete"]
[[auth.rules]]
repositories = ["auth/**"]
users = ["bob"]
actions = ["pull"]
TOML
  if [ "$mode" = token ]; then
    printf '[auth.token]\nkey = "%s/token.pem"\nlifetime = "5m"\n' "$work" >>"$work/berth.toml"
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  host="127.0.0.1:$port"
  "$berth" serve --config "$work/berth.toml" --listen "$host" --data-dir "$work/data" 2>"$work/berth.log" &
  pid=$!
  local up=
  for _ in $(seq 1 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$host/v2/")" = 401 ]; then up=1; break; fi
    sleep 0.1
  done
  if [ -z "$up" ]; then cat "$work/berth.log"; echo "0 passed, 1 failed"; exit 1; fi
}

for mode in basic token; do
start_berth "$mode"
sk=(skopeo --insecure-policy)
store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)

build_image() {
  [ -d "$work/oci" ] && return 0
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:img"
  umoci config --image "$work/oci:img" --config.cmd /bin/true --created 2020-01-01T00:00:00Z
}
check "$mode: content: an image built with umoci" build_image

logins() {
  if "${sk[@]}" login --tls-verify=false --authfile "$work/auth-bad.json" -u alice -p wrong "$host"; then
    echo "a wrong password logged in"; return 1
  fi
  "${sk[@]}" login --tls-verify=false --authfile "$work/alice.json" -u alice -p ecila "$host"
  "${sk[@]}" login --tls-verify=false --authfile "$work/bob.json" -u bob -p bob-secret "$host"
}
check "$mode: skopeo login: a wrong password is refused, right ones accepted" logins

push_pull() {
  "${sk[@]}" copy --dest-tls-verify=false --dest-authfile "$work/alice.json" "oci:$work/oci:img" "docker://$host/auth/app:1"
  "${sk[@]}" inspect --tls-verify=false --authfile "$work/bob.json" "docker://$host/auth/app:1" >/dev/null
  if "${sk[@]}" copy --dest-tls-verify=false --dest-authfile "$work/bob.json" "oci:$work/oci:img" "docker://$host/auth/app:2"; then
    echo "bob pushed without the right"; return 1
  fi
  if "${sk[@]}" inspect --tls-verify=false --no-creds "docker://$host/auth/app:1"; then
    echo "anonymous pull allowed"; return 1
  fi
  if "${sk[@]}" copy --dest-tls-verify=false --dest-authfile "$work/alice.json" "oci:$work/oci:img" "docker://$host/other/app:1"; then
    echo "alice pushed outside her repositories"; return 1
  fi
}
check "$mode: skopeo: alice pushes, bob pulls but cannot push, nobody else gets in" push_pull

podman_pull() {
  export REGISTRIES_CONFIG_PATH="$work/registries.conf"
  printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$host" >"$REGISTRIES_CONFIG_PATH"
  podman "${store[@]}" login --tls-verify=false --authfile "$work/podman.json" -u bob -p bob-secret "$host"
  podman "${store[@]}" pull --tls-verify=false --authfile "$work/podman.json" "$host/auth/app:1"
}
check "$mode: podman: login and pull as bob" podman_pull

oras_push() {
  BERTH_AUTH_HOST=$host BERTH_AUTH_WORK=$work "$venv/bin/python" - <<'PY'
import os, pathlib, oras.client
host, work = os.environ["BERTH_AUTH_HOST"], pathlib.Path(os.environ["BERTH_AUTH_WORK"])
c = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
c.login(username="alice", password="ecila", hostname=host)
f = work / "weights.bin"
f.write_bytes(b"model weights " * 1000)
os.chdir(work)
c.push(target=f"{host}/auth/model:v1", files=["weights.bin"])
out = work / "pulled"
c.pull(target=f"{host}/auth/model:v1", outdir=str(out))
assert (out / "weights.bin").read_bytes() == f.read_bytes()
PY
}
if [ "$mode" = basic ]; then check "$mode: oras SDK: login, push and pull as alice" oras_push; fi

docker_login() {
  local image="$host/auth/docker-$mode:1" out
  if out=$(echo wrong | d login -u alice --password-stdin "$host" 2>&1); then
    echo "a wrong password logged in"; return 1
  fi
  # With tokens docker shows Berth's message; over Basic docker 20.10 prints
  # only the status of its /v2/ probe (as it does for any registry).
  if [ "$mode" = token ]; then
    echo "$out" | grep -qi "incorrect username or password"
  else
    echo "$out" | grep -q "401 Unauthorized"
  fi
  echo ecila | d login -u alice --password-stdin "$host"
  d tag berth-auth/base:1 "$image"
  d push "$image"
  d logout "$host"
  d rmi "$image" >/dev/null
  if d pull "$image"; then echo "pulled without credentials"; return 1; fi
  echo bob-secret | d login -u bob --password-stdin "$host"
  d pull "$image"
  if d push "$image"; then echo "bob pushed"; return 1; fi
  d logout "$host"
}
check "$mode: docker: a wrong password is refused; alice pushes; after logout nothing; bob pulls but cannot push" docker_login
if [ "$mode" = basic ]; then
  # The whole spec suite again, signed in, inside alice's repositories.
  CONFORMANCE_URL="http://$host" CONFORMANCE_NS="auth/conf-$RANDOM" CONFORMANCE_WORK="$work" \
    CONFORMANCE_USER=alice CONFORMANCE_PASSWORD=ecila "$venv/bin/python" "$here/spec_suite.py" >"$work/spec.out" 2>&1
  while IFS= read -r line; do
    case $line in
      "ok "*) echo "ok   $mode: spec: ${line#ok }"; passed=$((passed + 1)) ;;
      "FAIL "*) echo "FAIL $mode: spec: ${line#FAIL }"; failed=$((failed + 1)) ;;
    esac
  done <"$work/spec.out"
fi

done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
