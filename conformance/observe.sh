#!/usr/bin/env bash
# conformance/observe.sh BERTH_BINARY: what an operator sees (observe.py):
# /metrics after a known sequence of requests, parsed by the Prometheus
# client's own parser; the JSON access log (fields, request ids, refused
# logins, no credentials); /readyz on a full disk and an unreachable store.
# Installs apache2-utils (htpasswd) and, into its venv, prometheus_client and
# requests. Ends with "N passed, N failed".
set -uo pipefail

berth=$(realpath "${1:?usage: conformance/observe.sh BERTH_BINARY}")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'mountpoint -q "$work/small" && umount "$work/small"; rm -rf "$work"' EXIT
. "$here/suite.sh"
install_missing htpasswd:apache2-utils
venv=${OBSERVE_VENV:-$HOME/.cache/berth-observe-venv}
if ! "$venv/bin/python" -c 'import prometheus_client, requests' 2>/dev/null; then
  echo "# installing prometheus_client into $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q 'prometheus_client==0.26.0' 'requests==2.32.5' \
    >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; echo "0 passed, 1 failed"; exit 1; }
fi
htpasswd -cbB "$work/users" alice ecila >/dev/null 2>&1
(cd "$here" && "$venv/bin/python" observe.py "$berth" "$work") >"$work/results" 2>&1
status=$?
cat "$work/results"
passed=$(grep -c '^ok ' "$work/results")
failed=$(grep -c '^FAIL ' "$work/results")
if [ $status -ne 0 ]; then
  failed=$((failed + 1))
  echo "FAIL observe.py stopped ($status); the servers' logs end:"; tail -n 5 "$work"/*.log
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
