#!/usr/bin/env bash
# conformance/run.sh URL: black-box spec suite and real clients against the
# registry at URL (http://host:port). Installs what it needs, uses a fresh
# repository namespace per run, keeps going after a failure, prints one line per
# check and ends with "N passed, N failed". Exit 0 only when all passed.
set -uo pipefail

url=${1:?usage: conformance/run.sh http://host:port}
url=${url%/}
host=${url#http://}
here=$(cd "$(dirname "$0")" && pwd)
ns="conf-$(date +%s)-$RANDOM"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CONFORMANCE_URL=$url CONFORMANCE_NS=$ns CONFORMANCE_WORK=$work

# --- what the suite needs ----------------------------------------------------
. "$here/suite.sh"
venv_tool=()
python3 -c 'import venv, ensurepip' 2>/dev/null || venv_tool=(python3-venv:python3-venv)
install_missing skopeo:skopeo podman:podman buildah:buildah umoci:umoci busybox:busybox-static \
  curl:curl jq:jq "${venv_tool[@]}"
venv=${CONFORMANCE_VENV:-$HOME/.cache/berth-conformance-venv}
if ! "$venv/bin/python" -c 'import oras, requests' 2>/dev/null; then
  echo "# installing the oras Python SDK into $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q 'oras==0.2.43' >"$work/pip.log" 2>&1 \
    || { cat "$work/pip.log"; echo "0 passed, 1 failed"; exit 1; }
fi
py="$venv/bin/python"

# Rootful podman and buildah with their own vfs store, nothing shared with the host.
store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
export REGISTRIES_CONFIG_PATH="$work/registries.conf"
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$host" >"$REGISTRIES_CONFIG_PATH"
export CONTAINERS_REGISTRIES_CONF=$REGISTRIES_CONFIG_PATH

# --- bookkeeping -------------------------------------------------------------
# ok, bad and check come from suite.sh.
results="$work/results"
: >"$results"
# Python checks print "ok NAME" / "FAIL NAME (why)" lines; count them.
tally() {
  while IFS= read -r line; do
    case $line in
      "ok "*) ok "${line#ok }" ;;
      "FAIL "*) bad "${line#FAIL }" ;;
      *) echo "$line" ;;
    esac
  done
}

# --- 1. the spec suite: pull, push, content discovery, content management ------
"$py" "$here/spec_suite.py" < /dev/null > "$work/spec.out" 2>&1
tally < "$work/spec.out"

# --- 2. real clients on content built here ------------------------------------
. "$here/clients.sh"

# --- 3. ORAS: a model with lineage, then an evaluation and a signature --------
"$py" "$here/oras_checks.py" < /dev/null > "$work/oras.out" 2>&1
tally < "$work/oras.out"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
