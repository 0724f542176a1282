#!/usr/bin/env bash
# conformance/powercut.sh BERTH_BINARY [ROUNDS] [SEED]: power cuts under load.
# Mounts conformance/powerfs.py (a FUSE file system that drops everything not
# synced when it is unmounted) and runs conformance/powercut.py on it: Berth
# serving from it, killed with the power at random moments during pushes,
# tag moves, promotions, chunked uploads, deletes and GC, then checked.
# Installs Debian's python3-fusepy (libfuse) if missing; needs root and
# /dev/fuse. Prints one line per check and ends with "N passed, N failed".
set -uo pipefail

berth=${1:?usage: conformance/powercut.sh BERTH_BINARY [ROUNDS] [SEED]}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cleanup() {
  mountpoint -q "$work/mnt" 2>/dev/null && umount -l "$work/mnt"
  rm -rf "$work"
}
trap cleanup EXIT

[ -e /dev/fuse ] || { echo "FAIL /dev/fuse is missing: powerfs cannot mount"; echo "0 passed, 1 failed"; exit 1; }
if ! /usr/bin/python3 -c 'import fusepy' 2>/dev/null; then
  echo "# installing python3-fusepy"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends python3-fusepy; } >"$work/apt.log" 2>&1 \
    || { cat "$work/apt.log"; echo "0 passed, 1 failed"; exit 1; }
fi
/usr/bin/python3 "$here/powercut.py" "$(realpath "$berth")" "$work" "${2:-12}" ${3:+"$3"}
status=$?
if [ $status -ne 0 ]; then
  # The faults first: the request that failed is usually far from the end.
  echo "# berth's logged faults and warnings (the last 20):"
  grep -E ' (ERROR|WARN) ' "$work/berth.log" | tail -n 20
  echo "# last lines of berth's log:"
  tail -n 20 "$work/berth.log"
fi
exit $status
