# Sourced by the conformance scripts: what they share. Needs $work.
#   install_missing TOOL:PACKAGE ...  installs (apt-get, Debian) the package of
#     every tool not on PATH; on failure shows apt's log, prints the suite's
#     closing line and exits.
#   check NAME CMD ...  runs CMD in a subshell that stops at the first failing
#     step, prints "ok   NAME" or "FAIL NAME (last lines)" (through ok / bad)
#     and counts it in $passed / $failed.

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
