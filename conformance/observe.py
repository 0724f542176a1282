"""What an operator sees: /metrics after a known sequence of requests, parsed
with the Prometheus client's own parser; the JSON access log; /readyz.

Usage: observe.py BERTH WORK   (WORK holds `users`, an htpasswd file with
alice:ecila; root, for the tmpfs of the full-disk check)
Prints one line per check (observe.sh counts them).
"""

import base64
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from checks import check, expect

BERTH, WORK = sys.argv[1], sys.argv[2]
USER, PASSWORD = "alice", "ecila"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Hook(http.server.BaseHTTPRequestHandler):
    posts = 0

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        Hook.posts += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def start(name, config, data, env=None):
    """A Berth with `config` (TOML text); its URL and process."""
    port = free_port()
    path = os.path.join(WORK, f"{name}.toml")
    with open(path, "w") as f:
        f.write(config)
    log = open(os.path.join(WORK, f"{name}.log"), "wb")
    proc = subprocess.Popen([BERTH, "serve", "--config", path, "--listen", f"127.0.0.1:{port}",
                             "--data-dir", data], stderr=log, env=dict(os.environ, **(env or {})))
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(url + "/healthz", timeout=1)
            return url, proc
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit(f"{name} did not start")


hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=hook.serve_forever, daemon=True).start()
config = f"""log_format = "json"
[auth]
htpasswd = "{WORK}/users"
admins = ["alice"]
[[auth.rules]]
repositories = ["obs/**"]
users = ["alice"]
actions = ["pull", "push", "delete", "promote"]
[[releases.gates]]
repositories = ["**"]
tags = ["guarded"]
metric = "auc"
op = ">="
threshold = 0.9
[[webhooks]]
name = "deploys"
url = "http://127.0.0.1:{hook.server_address[1]}/"
"""
url, berth = start("main", config, os.path.join(WORK, "data"))
me = (USER, PASSWORD)


def call(method, path, **kw):
    kw.setdefault("auth", me)
    return requests.request(method, url + path, **kw)


# --- the known sequence ----------------------------------------------------
assert call("GET", "/v2/", auth=None).status_code == 401
assert call("GET", "/v2/", auth=(USER, "wrong")).status_code == 401
traced = call("GET", "/v2/", headers={"X-Request-Id": "obs-trace-1"})
assert traced.status_code == 200
blob = os.urandom(100_000)
r = call("POST", f"/v2/obs/app/blobs/uploads/?digest={sha256(blob)}", data=blob,
         headers={"X-Request-Id": "obs-push-1"})
assert r.status_code == 201, r.text
chunked = os.urandom(50_000)
r = call("POST", "/v2/obs/app/blobs/uploads/")
loc = r.headers["Location"]
r = call("PATCH", loc, data=chunked, headers={"Content-Range": f"0-{len(chunked) - 1}",
                                                "Content-Type": "application/octet-stream"})
assert r.status_code == 202, r.text
r = call("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={sha256(chunked)}")
assert r.status_code == 201, r.text
left_open = call("POST", "/v2/obs/app/blobs/uploads/")
assert left_open.status_code == 202
config_blob = b'{"obs":1}'
assert call("POST", f"/v2/obs/app/blobs/uploads/?digest={sha256(config_blob)}",
            data=config_blob).status_code == 201
digests = {}
for tag, layer in (("v1", blob), ("v2", chunked)):
    m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": sha256(config_blob), "size": len(config_blob)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": sha256(layer), "size": len(layer)}],
                    "annotations": {"tag": tag}}).encode()
    r = call("PUT", f"/v2/obs/app/manifests/{tag}", data=m, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    digests[tag] = sha256(m)
for _ in range(2):
    assert call("GET", "/v2/obs/app/manifests/v1", headers={"Accept": OCI_MANIFEST}).ok
pulled = call("GET", f"/v2/obs/app/blobs/{sha256(blob)}")
assert pulled.content == blob
for tag in ("v1", "v2"):
    r = call("POST", "/api/v1/repositories/obs/app/promote",
             json={"reference": tag, "to": "production"})
    assert r.status_code == 200, r.text
r = call("POST", "/api/v1/repositories/obs/app/promote", json={"reference": "v1", "to": "guarded"})
assert r.status_code == 409, r.text
r = call("POST", "/api/v1/repositories/obs/app/rollback", json={"tag": "production"})
assert r.status_code == 200, r.text
r = call("POST", "/api/v1/gc")
assert r.status_code == 200, r.text
for _ in range(100):
    if Hook.posts and call("GET", "/metrics").text.count('webhook_outbox_lag{webhook="deploys"} 0'):
        break
    time.sleep(0.1)
scrape = call("GET", "/metrics")


# --- metrics ---------------------------------------------------------------
def samples():
    out = {}
    for family in text_string_to_metric_families(scrape.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


got = samples()


def value(name, **labels):
    return got.get((name, tuple(sorted(labels.items()))))


def value_version():
    return next(dict(k[1])["version"] for k in got if k[0] == "berth_build_info")


@check("metrics: served in the OpenMetrics format, parsed by prometheus_client")
def _():
    expect(scrape.status_code == 200, f"status {scrape.status_code}")
    expect(scrape.headers["Content-Type"].startswith("application/openmetrics-text"),
           scrape.headers["Content-Type"])
    expect(value("berth_build_info", version=value_version()) == 1, "no build info")


@check("metrics: requests counted by route kind, method and status")
def _():
    want = [
        (("base", "GET", "401"), 2), (("base", "GET", "200"), 1),
        (("upload_start", "POST", "201"), 2), (("upload_start", "POST", "202"), 2),
        (("upload", "PATCH", "202"), 1), (("upload", "PUT", "201"), 1),
        (("manifest", "PUT", "201"), 2), (("manifest", "GET", "200"), 2),
        (("blob", "GET", "200"), 1), (("promote", "POST", "200"), 2),
        (("promote", "POST", "409"), 1), (("rollback", "POST", "200"), 1),
        (("gc", "POST", "200"), 1),
    ]
    for (route, method, status), n in want:
        v = value("berth_http_requests_total", route=route, method=method, status=status)
        expect(v == n, f"{route} {method} {status}: {v}, not {n}")
    expect(value("berth_http_request_duration_seconds_count", route="promote",
                 method="POST") == 3, "latency of promotions")


@check("metrics: labels never hold a path or a repository name")
def _():
    for name, labels in got:
        for k, v in labels:
            expect(v not in ("obs", "app", "obs/app") and "/" not in v, f"{name} {k}={v}")


@check("metrics: bytes received and sent")
def _():
    received = value("berth_http_received_bytes_total")
    sent = value("berth_http_sent_bytes_total")
    expect(received >= len(blob) + len(chunked), f"received {received}")
    expect(sent >= len(blob), f"sent {sent}")


@check("metrics: releases, GC, uploads open, webhook deliveries and lag")
def _():
    expect(value("berth_releases_total", action="promote") == 2, "promotions")
    expect(value("berth_releases_total", action="promote_refused") == 1, "refusals")
    expect(value("berth_releases_total", action="rollback") == 1, "rollbacks")
    expect(value("berth_gc_runs_total", op="gc", result="ok") == 1, "gc runs")
    expect(value("berth_gc_duration_seconds_count") == 1, "gc duration")
    expect(value("berth_uploads_in_progress") == 1, f"uploads {value('berth_uploads_in_progress')}")
    ok = value("berth_webhook_deliveries_total", webhook="deploys", result="ok") or 0
    expect(ok >= 1 and ok <= Hook.posts, f"deliveries {ok}, hook saw {Hook.posts}")
    expect(value("berth_webhook_outbox_lag", webhook="deploys") == 0, "lag")


@check("metrics: storage and database calls, cache hits and misses")
def _():
    expect((value("berth_storage_operations_total", op="write", result="ok") or 0) >= 2,
           "storage writes")
    ops = {dict(k[1])["op"]: v for k, v in got.items() if k[0] == "berth_storage_operations_total"}
    expect((value("berth_storage_operations_total", op="append", result="ok") or 0) >= 1,
           f"storage appends: {ops}")
    expect((value("berth_db_operations_total", op="uploads", result="ok") or 0) >= 3,
           "database upload calls")
    expect((value("berth_storage_operation_duration_seconds_count", op="read") or 0) >= 1,
           "read latency")
    expect((value("berth_cache_lookups_total", cache="manifests", result="miss") or 0) >= 1, "miss")
    expect((value("berth_cache_lookups_total", cache="manifests", result="hit") or 0) >= 1, "hit")


# --- the access log -----------------------------------------------------------
berth.terminate()
berth.wait(timeout=10)
with open(os.path.join(WORK, "main.log")) as f:
    text = f.read()
lines = [json.loads(line) for line in text.splitlines() if line.strip()]
access = [line for line in lines if line.get("target") == "berth::access"]


@check("access log: one JSON line per request, at info, with its fields")
def _():
    expect(len(access) >= 20, f"{len(access)} lines")
    for line in access:
        for field in ("method", "path", "status", "bytes", "ms", "user", "client", "route"):
            expect(field in line, f"{field} missing in {line}")
        expect(line["level"] == "INFO", line)
        expect(line["span"]["id"], line)
    pushes = [a for a in access if a["route"] == "upload_start" and a["status"] == 201]
    expect(pushes and all(a["user"] == USER for a in pushes), "the user of a push")


@check("access log: refused logins are visible; no password or credentials in the log")
def _():
    refused = [a for a in access if a["status"] == 401]
    expect(len(refused) >= 2, f"{len(refused)} 401 lines")
    secret = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    expect(PASSWORD not in text and secret not in text, "credentials in the log")


@check("access log: X-Request-Id is echoed and carried by every line of its request")
def _():
    expect(traced.headers.get("X-Request-Id") == "obs-trace-1", "not echoed")
    mine = [line for line in lines if line.get("span", {}).get("id") == "obs-push-1"]
    expect(any(line.get("target") == "berth::access" for line in mine), "no access line")
    expect(any(line.get("message") == "blob pushed" for line in mine),
           f"the push's own log line lacks the id: {mine}")


@check("metrics_listen: /metrics without auth on its own address, behind auth on the main one")
def _():
    mport = free_port()
    auth_only = f'[auth]\nhtpasswd = "{WORK}/users"\n'
    main, proc = start("metrics", auth_only, os.path.join(WORK, "mdata"),
                       {"BERTH_METRICS_LISTEN": f"127.0.0.1:{mport}"})
    try:
        expect(requests.get(main + "/metrics").status_code == 401, "main address without auth")
        r = requests.get(f"http://127.0.0.1:{mport}/metrics")
        expect(r.status_code == 200 and "berth_build_info" in r.text, f"{r.status_code}")
        families = list(text_string_to_metric_families(r.text))
        expect(families, "parsed")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- readiness ------------------------------------------------------------------
@check("readyz: 503 with the reason when the disk is nearly full, 200 once space is back")
def _():
    disk = os.path.join(WORK, "small")
    os.makedirs(disk)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", disk], check=True)
    try:
        small, proc = start("small", "", disk)
        try:
            expect(requests.get(small + "/readyz").status_code == 200, "ready at first")
            filler = os.path.join(disk, "filler")
            with open(filler, "wb") as f:
                f.write(b"\0" * (50 << 20))
            r = requests.get(small + "/readyz")
            expect(r.status_code == 503 and "disk nearly full" in r.text, f"{r.status_code} {r.text}")
            expect(r.headers.get("Retry-After"), "Retry-After")
            expect(requests.get(small + "/healthz").status_code == 200, "healthz stays cheap")
            os.remove(filler)
            expect(requests.get(small + "/readyz").status_code == 200, "ready again")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        subprocess.run(["umount", disk], check=True)


@check("readyz: 503 when the object store does not answer")
def _():
    dead = free_port()
    env = {"BERTH_STORAGE__BACKEND": "s3", "BERTH_STORAGE__BUCKET": "nowhere",
           "BERTH_STORAGE__ENDPOINT": f"http://127.0.0.1:{dead}", "BERTH_STORAGE__ALLOW_HTTP": "true",
           "BERTH_STORAGE__REGION": "us-east-1", "BERTH_STORAGE__ACCESS_KEY_ID": "test",
           "BERTH_STORAGE__SECRET_ACCESS_KEY": "test", "BERTH_STORAGE__MAX_RETRIES": "0"}
    s3, proc = start("s3", "", os.path.join(WORK, "s3data"), env)
    try:
        r = requests.get(s3 + "/readyz", timeout=60)
        expect(r.status_code == 503 and "object store not reachable" in r.text,
               f"{r.status_code} {r.text}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

