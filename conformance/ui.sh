#!/usr/bin/env bash
# conformance/ui.sh BERTH_BINARY: the web UI in a real browser. Debian's
# chromium, driven headless by playwright-core (from npm), against a Berth
# with Basic users, per-repository rules and a release gate, seeded through
# the OCI API (conformance/ui/seed.mjs). Screenshots of the main pages go to
# $BERTH_UI_SCREENSHOTS (default target/ui-screenshots). Ends with
# "N passed, N failed".
set -uo pipefail
berth=${1:?usage: conformance/ui.sh path/to/berth}
berth=$(cd "$(dirname "$berth")" && pwd)/$(basename "$berth")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pid=
trap 'stop_pid "$pid"; rm -rf "$work"' EXIT

. "$here/suite.sh"
install_missing chromium:chromium htpasswd:apache2-utils node:nodejs npm:npm curl:curl
modules=${BERTH_UI_NODE_MODULES:-$HOME/.cache/berth-test-ui}
if [ ! -f "$modules/node_modules/playwright-core/package.json" ] \
  || ! grep -q '"version": "1.65.2"' "$modules/node_modules/playwright-core/package.json"; then
  echo "# installing playwright-core into $modules"
  npm install --prefix "$modules" --silent --no-audit --no-fund playwright-core@1.65.2 >"$work/npm.log" 2>&1 \
    || { cat "$work/npm.log"; echo "0 passed, 1 failed"; exit 1; }
fi

htpasswd -cbB "$work/users" alice ecila >/dev/null 2>&1
htpasswd -bB "$work/users" bob bob-secret >/dev/null 2>&1
cat >"$work/berth.toml" <<TOML
[auth]
htpasswd = "$work/users"
anonymous = "none"
[[auth.rules]]
repositories = ["**"]
users = ["alice"]
actions = ["pull", "push", "delete", "promote"]
[[auth.rules]]
repositories = ["models/**", "data/**", "llm/**", "library/**", "big/**"]
users = ["bob"]
actions = ["pull"]
[[releases.gates]]
repositories = ["models/**"]
tags = ["production"]
metric = "auc"
op = ">="
threshold = 0.9
[[releases.rollback]]
repositories = ["models/**"]
tags = ["production"]
metric = "auc"
op = ">="
threshold = 0.85
TOML
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# serve: berth on the data directory, once it is ready.
serve() {
  stop_pid "$pid"
  "$berth" serve --config "$work/berth.toml" --listen "127.0.0.1:$port" --data-dir "$work/data" 2>>"$work/berth.log" &
  pid=$!
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  cat "$work/berth.log"
  echo "0 passed, 1 failed"
  exit 1
}
shots=${BERTH_UI_SCREENSHOTS:-$(cd "$here/.." && pwd)/target/ui-screenshots}
mkdir -p "$shots"
serve
UI_NODE_MODULES="$modules" node "$here/ui/ui.test.mjs" "http://127.0.0.1:$port" "$shots"
status=$?
echo "# the same data with anonymous pull on"
sed -i 's/^anonymous = "none"$/anonymous = "pull"/' "$work/berth.toml"
serve
UI_NODE_MODULES="$modules" node "$here/ui/anonymous.test.mjs" "http://127.0.0.1:$port" || status=1
[ $status -eq 0 ] || { echo "# last lines of berth's log:"; tail -n 20 "$work/berth.log"; }
exit $status
