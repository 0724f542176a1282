"""Several stateless replicas on one PostgreSQL database and one S3 bucket,
behind nginx: what a client sees, races between replicas, kill -9 of a
replica mid-upload and of the leader mid-GC and mid-delivery, PostgreSQL
going away and coming back.

Usage: replicas.py BERTH WORK  with, in the environment, REPLICAS_PG_URL (a
fresh database), REPLICAS_PG_CTL (JSON: the pg_ctl command to which stop or
start is added), REPLICAS_S3 (endpoint), REPLICAS_BUCKET (created),
REPLICAS_LB_PORT (nginx's port; replicas.sh wrote its config for the ports
in WORK/ports). Prints one line per check (replicas.sh counts them).
"""

import hashlib
import http.server
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import requests

from checks import check, expect

BERTH, WORK = sys.argv[1], sys.argv[2]
PG_URL = os.environ["REPLICAS_PG_URL"]
PG_CTL = json.loads(os.environ["REPLICAS_PG_CTL"])
LB = f"http://127.0.0.1:{os.environ['REPLICAS_LB_PORT']}"
PORTS = [int(p) for p in open(os.path.join(WORK, "ports")).read().split()]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
ENV = {
    "BERTH_STORAGE__BACKEND": "s3",
    "BERTH_STORAGE__BUCKET": os.environ["REPLICAS_BUCKET"],
    "BERTH_STORAGE__ENDPOINT": os.environ["REPLICAS_S3"],
    "BERTH_STORAGE__ALLOW_HTTP": "true",
    "BERTH_STORAGE__REGION": "us-east-1",
    "BERTH_STORAGE__ACCESS_KEY_ID": "test",
    "BERTH_STORAGE__SECRET_ACCESS_KEY": "test",
    "BERTH_METADATA__BACKEND": "postgres",
    "BERTH_METADATA__URL": PG_URL,
    "BERTH_LOG": "warn",
}


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Hook(http.server.BaseHTTPRequestHandler):
    """Counts every event id delivered, and who delivered it."""
    lock = threading.Lock()
    seen = {}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Hook.lock:
            for e in body["events"]:
                Hook.seen[int(e["id"])] = Hook.seen.get(int(e["id"]), 0) + 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=hook.serve_forever, daemon=True).start()


class Replica:
    def __init__(self, i):
        self.i, self.port = i, PORTS[i]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, gc="1h"):
        path = os.path.join(WORK, f"replica{self.i}.toml")
        with open(path, "w") as f:
            f.write(f"""[gc]
interval = "{gc}"
grace_period = "{'0s' if gc != '1h' else '24h'}"
[[webhooks]]
name = "deploys"
url = "http://127.0.0.1:{hook.server_address[1]}/"
""")
        log = open(os.path.join(WORK, f"replica{self.i}.log"), "ab")
        data = os.path.join(WORK, f"data{self.i}")
        self.proc = subprocess.Popen(
            [BERTH, "serve", "--config", path, "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", data], stderr=log, env=dict(os.environ, **ENV))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"replica {self.i} did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

    def leads(self):
        text = requests.get(self.url + "/metrics", timeout=5).text
        return any(line.startswith("berth_leader ") and line.split()[1] in ("1", "1.0")
                   for line in text.splitlines())


replicas = [Replica(i) for i in range(len(PORTS))]
for r in replicas:
    r.start()


HERE = os.path.dirname(os.path.abspath(__file__))
# The whole conformance and real-client suite, through the load balancer.
out = subprocess.run([os.path.join(HERE, "run.sh"), LB], capture_output=True, text=True)
for line in out.stdout.splitlines():
    if line.startswith(("ok ", "FAIL ")):
        kind, _, name = line.partition(" ")
        print(f"{kind} through nginx: {name.strip()}", flush=True)
if out.returncode != 0 and "FAIL" not in out.stdout:
    print(f"FAIL run.sh through nginx ({out.stdout[-200:]} {out.stderr[-200:]})", flush=True)


def push_blob(base, repo, data):
    r = requests.post(f"{base}/v2/{repo}/blobs/uploads/?digest={sha256(data)}", data=data)
    expect(r.status_code == 201, f"blob push: {r.status_code} {r.text}")
    return sha256(data)


def image(base, repo, seed):
    """Pushes a config and a layer; the manifest bytes."""
    config = json.dumps({"seed": seed}).encode()
    layer = f"layer {seed}".encode() * 10
    push_blob(base, repo, config)
    push_blob(base, repo, layer)
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
    }).encode()


def put_manifest(base, repo, ref, body):
    r = requests.put(f"{base}/v2/{repo}/manifests/{ref}", data=body,
                     headers={"Content-Type": OCI_MANIFEST})
    expect(r.status_code == 201, f"manifest push: {r.status_code} {r.text}")
    return r.headers["Docker-Content-Digest"]


def resolve(base, repo, tag):
    r = requests.head(f"{base}/v2/{repo}/manifests/{tag}",
                      headers={"Accept": OCI_MANIFEST}, timeout=5)
    return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None


def events(base, after, n=100):
    r = requests.get(f"{base}/api/v1/events?after={after}&n={n}", timeout=10)
    expect(r.status_code == 200, f"events: {r.status_code}")
    return [int(e["id"]) for e in r.json()["events"]]


def all_events(base, after=0):
    every = []
    while True:
        page = events(base, after, 1000)
        if not page:
            return every
        every.extend(page)
        after = page[-1]


@check("a push through one replica is pulled from every replica, by tag and by digest")
def _():
    body = image(replicas[0].url, "rep/app", "one")
    digest = put_manifest(replicas[0].url, "rep/app", "v1", body)
    for r in replicas:
        for ref in ("v1", digest):
            got = requests.get(f"{r.url}/v2/rep/app/manifests/{ref}",
                               headers={"Accept": OCI_MANIFEST})
            expect(got.status_code == 200 and got.content == body,
                   f"replica {r.i} {ref}: {got.status_code}")
        layer = json.loads(body)["layers"][0]["digest"]
        blob = requests.get(f"{r.url}/v2/rep/app/blobs/{layer}")
        expect(blob.status_code == 200 and sha256(blob.content) == layer, f"replica {r.i} blob")


visibility = []


@check("a tag moved on one replica is seen at once there, and on the others within 1 s")
def _():
    repo = "rep/visible"
    for n in range(30):
        writer = replicas[n % len(replicas)]
        readers = [r for r in replicas if r is not writer]
        body = image(writer.url, repo, f"vis-{n}")
        for r in readers:  # warm their caches with the tag as it is
            resolve(r.url, repo, "live")
        digest = put_manifest(writer.url, repo, "live", body)
        start = time.monotonic()
        expect(resolve(writer.url, repo, "live") == digest, "the writer sees its write at once")
        pending = set(r.i for r in readers)
        while pending:
            for r in readers:
                if r.i in pending and resolve(r.url, repo, "live") == digest:
                    pending.discard(r.i)
                    visibility.append((time.monotonic() - start) * 1000)
            expect(time.monotonic() - start < 1.0, f"replicas {pending} still stale after 1 s")
    visibility.sort()
    print(f"# visibility on other replicas over {len(visibility)} reads: "
          f"median {statistics.median(visibility):.1f} ms, "
          f"p99 {visibility[int(len(visibility) * 0.99) - 1]:.1f} ms, max {visibility[-1]:.1f} ms")


@check("a chunked upload whose PATCHes go to different replicas finishes on a third")
def _():
    data = os.urandom(3 * 5 * 1024 * 1024 + 1234)
    chunk = 5 * 1024 * 1024
    r = requests.post(f"{replicas[0].url}/v2/rep/chunked/blobs/uploads/")
    expect(r.status_code == 202, f"POST {r.status_code}")
    loc = r.headers["Location"]
    for n, start in enumerate(range(0, len(data), chunk)):
        part = data[start:start + chunk]
        via = replicas[n % len(replicas)]
        r = requests.patch(via.url + loc if loc.startswith("/") else loc, data=part, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(part) - 1}"})
        expect(r.status_code == 202, f"PATCH {n} on replica {via.i}: {r.status_code} {r.text}")
        loc = r.headers["Location"]
    last = replicas[-1]
    sep = "&" if "?" in loc else "?"
    r = requests.put(f"{last.url}{loc}{sep}digest={sha256(data)}")
    expect(r.status_code == 201, f"PUT {r.status_code} {r.text}")
    got = requests.get(f"{replicas[1].url}/v2/rep/chunked/blobs/{sha256(data)}")
    expect(got.content == data, "the blob reads back whole")


def race(calls):
    """Runs the calls at once; their responses."""
    out = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i):
        barrier.wait()
        out[i] = calls[i]()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@check("racing promotions on two replicas: exactly one wins, the other gets 412")
def _():
    repo = "rep/promote"
    digests = [put_manifest(replicas[0].url, repo, f"c{n}", image(replicas[0].url, repo, f"p{n}"))
               for n in range(3)]
    base = digests[0]
    requests.post(f"{replicas[0].url}/api/v1/repositories/{repo}/promote",
                  json={"reference": base, "to": "production"}).raise_for_status()
    for n in range(20):
        current = resolve(replicas[0].url, repo, "production")
        targets = [d for d in digests if d != current][:2]
        answers = race([
            (lambda via, to: lambda: requests.post(
                f"{via.url}/api/v1/repositories/{repo}/promote",
                json={"reference": to, "to": "production", "expect": current}))(replicas[k], t)
            for k, t in enumerate(targets)])
        codes = sorted(a.status_code for a in answers)
        expect(codes == [200, 412], f"round {n}: {codes} {[a.text for a in answers]}")
        winner = targets[[a.status_code for a in answers].index(200)]
        expect(resolve(replicas[2].url, repo, "production") == winner,
               f"round {n}: production is not at the winner's digest")


@check("the same blob finished on every replica at once: all succeed, each replica reads it whole")
def _():
    for n in range(5):
        data = os.urandom(256 * 1024)
        answers = race([(lambda r: lambda: requests.post(
            f"{r.url}/v2/rep/same/blobs/uploads/?digest={sha256(data)}", data=data))(r)
            for r in replicas])
        codes = [a.status_code for a in answers]
        expect(codes == [201] * len(replicas), f"round {n}: {codes}")
        for r in replicas:
            got = requests.get(f"{r.url}/v2/rep/same/blobs/{sha256(data)}")
            expect(got.content == data, f"round {n}: replica {r.i} reads it whole")


@check("racing tag moves on every replica: each move is in the history once, none lost")
def _():
    repo = "rep/moves"
    bodies = [[image(r.url, repo, f"m{r.i}-{n}") for n in range(8)] for r in replicas]

    def mover(r):
        return lambda: [put_manifest(r.url, repo, "moving", b) for b in bodies[r.i]]
    pushed = race([mover(r) for r in replicas])
    moved = {d for ds in pushed for d in ds}
    r = requests.get(f"{LB}/api/v1/repositories/{repo}/tags/moving/history?n=1000")
    expect(r.status_code == 200, f"history {r.status_code}")
    history = r.json()["history"]
    news = [h["to"] for h in history]
    expect(len(news) == len(moved) and set(news) == moved,
           f"{len(news)} history rows for {len(moved)} moves")
    ids = [h["id"] for h in history]
    expect(ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids), "ids in order, once")
    # Each row starts where the one before it ended.
    chain = list(reversed(history))
    expect(all(chain[k]["from"] == chain[k - 1]["to"] for k in range(1, len(chain))),
           "every move starts from the one before")


@check("a reader paging events with after= over every replica sees each event once, in order")
def _():
    start = max([0] + all_events(LB))
    seen, stop = [], threading.Event()

    def read():
        after = start
        while True:
            done = stop.is_set()
            for r in replicas:
                page = events(r.url, after, 7)
                seen.extend(page)
                if page:
                    after = page[-1]
            if done and not page:
                return
    reader = threading.Thread(target=read)
    reader.start()
    race([(lambda r: lambda: [put_manifest(r.url, "rep/events", f"e{r.i}-{n}",
                                           image(r.url, "rep/events", f"e{r.i}-{n}"))
                              for n in range(10)])(r) for r in replicas])
    stop.set()
    reader.join()
    every = all_events(LB, start)
    expect(seen == every, f"the reader saw {len(seen)} of {len(every)}; "
                          f"missed {sorted(set(every) - set(seen))[:5]}")
    expect(every == sorted(set(every)), "ids increase")


def leader():
    found = [r for r in replicas if r.proc.poll() is None and r.leads()]
    expect(len(found) <= 1, f"{len(found)} leaders")
    return found[0] if found else None


def wait_for_delivery(upto, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        with Hook.lock:
            if all(i in Hook.seen for i in upto):
                return True
        time.sleep(0.1)
    return False


@check("one leader; webhooks deliver every event once in normal running")
def _():
    expect(leader() is not None, "a leader")
    every = all_events(LB)
    expect(wait_for_delivery(every, 30), "every event delivered")
    with Hook.lock:
        twice = [i for i in every if Hook.seen[i] != 1]
    expect(not twice, f"delivered more than once: {twice[:5]}")


@check("kill -9 of the leader: another leads within 10 s and delivery goes on")
def _():
    old = leader()
    expect(old is not None, "a leader")
    old.kill()
    start = time.time()
    new = None
    while time.time() - start < 10 and new is None:
        new = leader()
        time.sleep(0.1)
    expect(new is not None, "no leader 10 s after the kill")
    took = time.time() - start
    other = next(r for r in replicas if r.proc.poll() is None)
    for n in range(5):
        put_manifest(other.url, "rep/after", f"a{n}", image(other.url, "rep/after", f"a{n}"))
    every = all_events(other.url)
    expect(wait_for_delivery(every, 20), "events after the kill delivered")
    print(f"# a new leader took over {took:.1f} s after the old one was killed")
    old.start()


def _ignore(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - the connection dies with the replica
        pass


@check("kill -9 mid-upload: the session goes on through another replica, nothing acked lost")
def _():
    a, b = replicas[0], replicas[1]
    first = os.urandom(5 * 1024 * 1024)
    rest = os.urandom(5 * 1024 * 1024 + 77)
    r = requests.post(f"{a.url}/v2/rep/killed/blobs/uploads/")
    loc = r.headers["Location"]
    r = requests.patch(a.url + loc, data=first, headers={
        "Content-Type": "application/octet-stream", "Content-Range": f"0-{len(first) - 1}"})
    expect(r.status_code == 202, f"first chunk {r.status_code}")
    loc = r.headers["Location"]

    def slow():
        yield rest[:1024 * 1024]
        time.sleep(30)
        yield rest[1024 * 1024:]
    t = threading.Thread(target=lambda: _ignore(lambda: requests.patch(
        a.url + loc, data=slow(), headers={"Content-Type": "application/octet-stream"})))
    t.start()
    time.sleep(0.5)
    a.kill()
    r = requests.get(b.url + loc)
    expect(r.status_code == 204 and r.headers.get("Range") == f"0-{len(first) - 1}",
           f"status on another replica: {r.status_code} {r.headers.get('Range')}")
    r = requests.patch(b.url + loc, data=rest, headers={
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{len(first)}-{len(first) + len(rest) - 1}"})
    expect(r.status_code == 202, f"the rest on replica {b.i}: {r.status_code} {r.text}")
    loc = r.headers["Location"]
    data = first + rest
    r = requests.put(f"{b.url}{loc}{'&' if '?' in loc else '?'}digest={sha256(data)}")
    expect(r.status_code == 201, f"PUT {r.status_code} {r.text}")
    got = requests.get(f"{replicas[2].url}/v2/rep/killed/blobs/{sha256(data)}")
    expect(got.content == data, "the blob reads back whole")
    a.start()
    t.join(timeout=1)


@check("kill -9 of the leader during GC: the next leader finishes it, nothing needed is lost")
def _():
    # Pushed before collection runs with no grace period: its blobs are
    # garbage until its manifest lands, and a sweep between the two would
    # rightly take them.
    kept = put_manifest(replicas[0].url, "rep/kept", "v1", image(replicas[0].url, "rep/kept", "k"))
    for r in replicas:
        r.stop()
    for r in replicas:
        r.start(gc="1s")
    garbage = [push_blob(replicas[k % 3].url, "rep/garbage", os.urandom(2048) + k.to_bytes(2, "big"))
               for k in range(300)]

    def gone(d):
        return requests.head(f"{LB}/v2/rep/garbage/blobs/{d}").status_code == 404
    deadline = time.time() + 30
    while not any(gone(d) for d in garbage[:50]):
        expect(time.time() < deadline, "GC never started")
        time.sleep(0.02)
    victim = leader()
    expect(victim is not None, "a leader")
    victim.kill()
    deadline = time.time() + 60
    while not all(gone(d) for d in garbage):
        expect(time.time() < deadline, f"{sum(not gone(d) for d in garbage)} garbage blobs left")
        time.sleep(0.2)
    victim.start(gc="1s")
    expect(resolve(LB, "rep/kept", "v1") == kept, "the tagged image stays")
    body = requests.get(f"{LB}/v2/rep/kept/manifests/v1", headers={"Accept": OCI_MANIFEST}).json()
    for blob in [body["config"]] + body["layers"]:
        r = requests.get(f"{LB}/v2/rep/kept/blobs/{blob['digest']}")
        expect(r.status_code == 200 and sha256(r.content) == blob["digest"], "its blobs stay")
    for r in replicas:
        r.stop()
    try:
        out = subprocess.run([BERTH, "fsck", "--data-dir", os.path.join(WORK, "data0")],
                             env=dict(os.environ, **ENV), capture_output=True, text=True)
        expect(out.returncode == 0, f"fsck: {out.stdout[-400:]} {out.stderr[-200:]}")
    finally:
        for r in replicas:
            r.start()


@check("PostgreSQL stopped: 503 with the JSON error and Retry-After, not ready; back by itself")
def _():
    a = replicas[0]
    acked = put_manifest(a.url, "rep/pg", "before", image(a.url, "rep/pg", "before"))
    subprocess.run(PG_CTL + ["-m", "fast", "stop"], check=True, capture_output=True)
    try:
        time.sleep(0.5)
        r = requests.post(f"{a.url}/v2/rep/pg/blobs/uploads/")
        expect(r.status_code == 503, f"a write answers {r.status_code}")
        expect(r.headers.get("Retry-After"), "Retry-After")
        expect(r.json()["errors"][0]["code"], "the JSON error body")
        r = requests.get(f"{a.url}/readyz")
        expect(r.status_code == 503, f"readyz {r.status_code}")
    finally:
        subprocess.run(PG_CTL + ["start"], check=True, capture_output=True)
    deadline = time.time() + 20
    while requests.get(f"{a.url}/readyz").status_code != 200:
        expect(time.time() < deadline, "not ready 20 s after PostgreSQL came back")
        time.sleep(0.2)
    # Every replica answers at once, from connections opened before the
    # restart (an idle one that is lent again must be seen to have ended).
    for r in replicas:
        got = requests.head(f"{r.url}/v2/rep/pg/manifests/before",
                            headers={"Accept": OCI_MANIFEST}, timeout=5)
        expect(got.status_code == 200, f"replica {r.i} answers {got.status_code} after the restart")
        expect(got.headers.get("Docker-Content-Digest") == acked, f"replica {r.i} lost a write")
    put_manifest(a.url, "rep/pg", "after", image(a.url, "rep/pg", "after"))


@check("PostgreSQL unreachable at start: a clear error naming the URL, never the password")
def _():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(os.environ, **ENV)
    env["BERTH_METADATA__URL"] = f"postgres://berth:n0t-shown@127.0.0.1:{port}/berth"
    out = subprocess.run([BERTH, "serve", "--listen", "127.0.0.1:0", "--data-dir",
                          os.path.join(WORK, "unreachable")], env=env, capture_output=True,
                         text=True, timeout=60)
    expect(out.returncode != 0, "it does not start")
    expect(f"127.0.0.1:{port}" in out.stderr, f"names the address: {out.stderr[-300:]}")
    expect("n0t-shown" not in out.stderr + out.stdout, "the password shows")


for r in replicas:
    if r.proc.poll() is None:
        r.stop()
