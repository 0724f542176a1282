#!/usr/bin/env bash
# Runs every test: the Rust unit and integration tests (on local disk and
# SQLite, then the integration suite again on S3, and on S3 with PostgreSQL
# metadata), then the black-box conformance and
# real-client suite against a freshly started `berth serve` on local disk and
# on S3, the Docker engine (conformance/docker.sh, which installs and
# starts its own dockerd) against the one on local disk, and power cuts
# (conformance/powercut.sh, on a FUSE file system of its own), and three
# replicas behind nginx (conformance/replicas.sh), and the web UI in
# headless Chromium (conformance/ui.sh). Installs what it
# needs on a fresh machine, including an S3 server (moto's server mode, from
# PyPI), Azure's emulator (Azurite, from npm) and PostgreSQL (Debian), which
# it starts on loopback.
set -euo pipefail
cd "$(dirname "$0")"

# The Rust tests run curl and openssl (TLS) and mount a tmpfs; the S3 server
# needs a Python venv. Install what a fresh machine lacks.
need=()
for tool in curl:curl openssl:openssl python3:python3; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_for() {
  for _ in $(seq 1 200); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nothing answered at $1" >&2
  return 1
}

scratch=$(mktemp -d)
pids=()
pg_ctl=()
cleanup() {
  [ ${#pg_ctl[@]} -eq 0 ] || "${pg_ctl[@]}" -m immediate stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# --- an S3 server on loopback ------------------------------------------------
venv=${TEST_VENV:-$HOME/.cache/berth-test-venv}
# NumPy, scikit-learn, joblib and zstandard write the model files the pickle scanner
# is tested on (tests/it/scan_ml_fixtures.py, run by TEST_PYTHON).
if ! "$venv/bin/python" -c 'import moto.server, azure.storage.blob, numpy, sklearn, joblib, zstandard' 2>/dev/null; then
  echo "# installing moto (S3 server), the Azure SDK, numpy, scikit-learn, joblib and zstandard into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'moto[server]==5.2.5' 'azure-storage-blob==12.31.1' \
    'numpy==2.1.3' 'scikit-learn==1.5.2' 'joblib==1.4.2' 'zstandard==0.23.0'
fi
export TEST_PYTHON="$venv/bin/python"
s3port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$s3port" >"$scratch/moto.log" 2>&1 &
pids+=($!)
export TEST_S3_ENDPOINT="http://127.0.0.1:$s3port"
wait_for "$TEST_S3_ENDPOINT/"

# --- Azurite (Azure's emulator) on loopback, with the container `berth` ------
azurite=${TEST_AZURITE_DIR:-$HOME/.cache/berth-test-azurite}
if [ ! -x "$azurite/node_modules/.bin/azurite-blob" ]; then
  echo "# installing Azurite into $azurite"
  npm install --prefix "$azurite" --silent --no-audit --no-fund azurite@3.35.0
fi
azport=$(free_port)
"$azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$azport" \
  --inMemoryPersistence --skipApiVersionCheck --loose \
  >"$scratch/azurite.log" 2>&1 &
pids+=($!)
export TEST_AZURE_ENDPOINT="http://127.0.0.1:$azport"
"$venv/bin/python" - "$TEST_AZURE_ENDPOINT" <<'PY'
import sys, time
from azure.storage.blob import BlobServiceClient
# Azurite's well-known development account: public constants, not secrets.
key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
        f"BlobEndpoint={sys.argv[1]}/devstoreaccount1;")
client = BlobServiceClient.from_connection_string(conn, retry_total=0)
for attempt in range(100):
    try:
        client.create_container("berth")
        break
    except Exception:
        if attempt == 99:
            raise
        time.sleep(0.2)
PY

# --- PostgreSQL on loopback (its cluster owned by an unprivileged user) -----
. conformance/postgres.sh
chmod 755 "$scratch"
start_postgres "$scratch/postgres" "$(free_port)"
export TEST_POSTGRES_URL="$pg_url"

# --- Rust tests --------------------------------------------------------------
cargo test
TEST_STORAGE=s3 cargo test --test it
TEST_STORAGE=s3 TEST_META=postgres cargo test --test it

# --- conformance and real clients, on local disk and on S3 -------------------
# start_berth NAME [ENV=VALUE ...]: a release `berth serve` on a fresh data
# directory and a free port; sets $berth_url.
start_berth() {
  local name=$1; shift
  local data="$scratch/$name" port
  port=$(free_port)
  mkdir -p "$data"
  env "$@" ./target/release/berth serve --listen "127.0.0.1:$port" --data-dir "$data" 2>"$data.log" &
  pids+=($!)
  berth_url="http://127.0.0.1:$port"
  wait_for "$berth_url/v2/"
}

cargo build --release --bin berth
start_berth local
conformance/run.sh "$berth_url"
echo "# the Docker engine against the same server"
conformance/docker.sh "$berth_url"
echo "# power cuts: a data directory on a file system that forgets what was not synced"
conformance/powercut.sh ./target/release/berth
echo "# metrics, access log and readiness"
conformance/observe.sh ./target/release/berth
echo "# deploy/: the image, compose, Kubernetes, systemd, the dashboard"
conformance/deploy.sh ./target/release/berth

bucket="conformance-$(date +%s)"
curl -fsS -X PUT "$TEST_S3_ENDPOINT/$bucket" >/dev/null
start_berth s3 \
  BERTH_STORAGE__BACKEND=s3 BERTH_STORAGE__BUCKET="$bucket" BERTH_STORAGE__PREFIX=registry \
  BERTH_STORAGE__ENDPOINT="$TEST_S3_ENDPOINT" BERTH_STORAGE__ALLOW_HTTP=true \
  BERTH_STORAGE__REGION=us-east-1 BERTH_STORAGE__ACCESS_KEY_ID=test \
  BERTH_STORAGE__SECRET_ACCESS_KEY=test
echo "# conformance on S3 (bucket $bucket)"
conformance/run.sh "$berth_url"
echo "# three replicas on PostgreSQL and S3 behind nginx"
conformance/replicas.sh ./target/release/berth

conformance/auth.sh ./target/release/berth
echo "# the web UI in headless Chromium"
conformance/ui.sh ./target/release/berth
