# Sourced by the conformance scripts: install_missing TOOL:PACKAGE ... installs
# (apt-get, Debian) the package of every tool not on PATH. On failure it shows
# apt's log, prints the suite's closing line and exits. Needs $work.

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
