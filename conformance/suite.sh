# Sourced by the conformance scripts: what they share. Needs $work.
#   install_missing TOOL:PACKAGE ...  installs (apt-get, Debian) the package of
#     every tool not on PATH; on failure shows apt's log, prints the suite's
#     closing line and exits.
#   check NAME CMD ...  runs CMD in a subshell that stops at the first failing
#     step, prints "ok   NAME" or "FAIL NAME (last lines)" (through ok / bad)
#     and counts it in $passed / $failed.
#   start_dockerd  starts a Docker engine of its own under $work/docker (vfs
#     storage, no bridge, no iptables; data, exec root, socket and client
#     config there), sets DOCKER_HOST, DOCKER_CONFIG, $docker_bin and
#     $dockerd_pid; on failure shows its log, prints the closing line, exits.
#   stop_pid PID  stops a daemon and waits (10 s at most) for it to go.

install_missing() {
  local need=() tool
  for tool in "$@"; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  echo "# installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"; } >"$work/apt.log" 2>&1 \
    || { cat "$work/apt.log"; echo "0 passed, 1 failed"; exit 1; }
}

passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1${2:+ ($2)}"; failed=$((failed + 1)); }
check() {
  local name=$1; shift
  ( set -e; "$@" ) >"$work/out" 2>&1
  if [ $? -eq 0 ]; then ok "$name"; else bad "$name" "$(tail -n 3 "$work/out" | tr '\n' ' ' | cut -c1-300)"; fi
}

dockerd_pid=
start_dockerd() {
  local dir="$work/docker" up=
  mkdir -p "$dir/config"
  # The client shipped with the engine (the machine may have another, newer one first on PATH).
  docker_bin=/usr/bin/docker
  [ -x "$docker_bin" ] || docker_bin=$(command -v docker)
  export DOCKER_HOST="unix://$dir/docker.sock" DOCKER_CONFIG="$dir/config" DOCKER_BUILDKIT=0
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "$DOCKER_HOST" >"$dir/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 150); do "$docker_bin" info >/dev/null 2>&1 && { up=1; break; }; sleep 0.2; done
  [ -n "$up" ] || { tail -20 "$dir/dockerd.log"; echo "0 passed, 1 failed"; exit 1; }
}

stop_pid() {
  [ -n "${1:-}" ] || return 0
  kill "$1" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
}
