"""Power cuts under load: Berth's data directory on powerfs.py, cut at random.

Usage: powercut.py BERTH_BINARY WORK_DIR [ROUNDS] [SEED]   (root; /dev/fuse)

Each round starts `berth serve` on the mounted file system and runs workers
that push images by tag (moving their tags), promote to an environment tag,
upload in chunks (leaving some sessions open across rounds), push and delete
untagged manifests, and run GC. At a random moment the power goes: Berth is
killed, the file system is unmounted, and everything not synced is dropped.
Then `berth fsck` must find nothing missing, corrupt or dangling, and a
restarted Berth must hold every acknowledged write:
  - each tag names the digest of its last acknowledged move, or of the move
    still in flight when the power went, and its history ends there;
  - every manifest a tag names reads back byte for byte, and so do its blobs;
  - every repository and tag listed reads back whole (nothing half-written);
  - a deleted manifest stays deleted;
  - an open upload resumes at its last acknowledged chunk (or one in flight)
    and finishes with the right digest; only a session that never had a chunk
    acknowledged may be gone.
Prints one line per check and ends with "N passed, N failed".
"""

import hashlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
WORKERS = 3


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def image(config, layers):
    """An image manifest over a config and layers."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer), "size": len(layer)} for layer in layers],
    }).encode()


class Down(Exception):
    """The server went away mid-request: the outcome is unknown."""


class Client:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        except (OSError, http.client.HTTPException) as e:
            raise Down(str(e)) from e
        finally:
            conn.close()

    def push_blob(self, repo, data):
        d = sha256(data)
        status, _, body = self.call("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data,
                                    {"Content-Type": "application/octet-stream"})
        if status != 201:
            raise AssertionError(f"blob push {status}: {body[:200]!r}")
        return d


# Pushes of a manifest (with its blobs again) while collections with no grace
# period keep taking its blobs between their push and the manifest's.
ATTEMPTS = 10


class Tag:
    """What a tag may name after a cut: its last acknowledged digest, or one
    sent after it whose answer never came."""

    def __init__(self):
        self.acked = None
        self.maybe = set()

    def allowed(self):
        return {self.acked} | self.maybe


class Session:
    def __init__(self, loc, data):
        self.loc, self.data, self.acked, self.tried = loc, data, 0, {0}
        self.finishing = False


class Ledger:
    """Everything acknowledged so far, per worker (each worker owns its
    repository, so nothing it records races another worker)."""

    def __init__(self):
        self.tags = {}          # (repo, tag) -> Tag
        self.manifests = {}     # digest -> bytes
        self.blobs = {}         # digest -> bytes
        self.deleted = set()    # manifest digests acknowledged as deleted
        self.sessions = []      # (repo, Session) still open
        self.acks = 0

    def tag(self, repo, tag):
        return self.tags.setdefault((repo, tag), Tag())


class Worker(threading.Thread):
    def __init__(self, n, client, ledger, lock, stop, rng, errors):
        super().__init__(daemon=True)
        self.n, self.c, self.ledger, self.lock, self.stop = n, client, ledger, lock, stop
        self.rng, self.errors = rng, errors
        self.repo = f"pc/w{n}"

    def data(self, lo, hi):
        return self.rng.randbytes(self.rng.randint(lo, hi))

    def run(self):
        ops = [self.push_image] * 4 + [self.promote] * 2 + [self.chunked] * 3 + [self.junk]
        if self.n == 0:
            ops.append(self.gc)
        while not self.stop.is_set():
            try:
                self.rng.choice(ops)()
            except Down:
                return
            except AssertionError as e:
                if not self.stop.is_set():
                    self.errors.append(f"worker {self.n}: {e}")
                return

    def put_manifest(self, repo, ref, layers):
        config = json.dumps({"worker": self.n, "nonce": self.rng.random()}).encode()
        body = image(config, layers)
        digest = sha256(body)
        with self.lock:
            self.ledger.manifests[digest] = body
        with self.lock:
            tag = self.ledger.tag(repo, ref)
        for attempt in range(ATTEMPTS):
            for b in [config] + layers:
                self.c.push_blob(repo, b)
                with self.lock:
                    self.ledger.blobs[sha256(b)] = b
            if tag:
                with self.lock:
                    tag.maybe.add(digest)
            status, _, text = self.c.call("PUT", f"/v2/{repo}/manifests/{ref}", body,
                                          {"Content-Type": OCI_MANIFEST})
            if status == 201:
                if tag:
                    with self.lock:
                        tag.acked, tag.maybe = digest, set()
                        self.ledger.acks += 1
                return digest
            # GC (no grace period here) may take blobs between their push
            # and the manifest's: the client pushes them again.
            if status != 400 or b"MANIFEST_BLOB_UNKNOWN" not in text:
                raise AssertionError(f"manifest PUT {status}: {text[:200]!r}")
            time.sleep(0.01 * attempt)
        raise AssertionError(f"manifest refused {ATTEMPTS} times")

    def push_image(self):
        layers = [self.data(100, 40_000) for _ in range(self.rng.randint(1, 3))]
        self.put_manifest(self.repo, f"v{self.rng.randint(1, 3)}", layers)

    def promote(self):
        with self.lock:
            known = [(t, v.acked) for (r, t), v in self.ledger.tags.items()
                     if r == self.repo and t.startswith("v") and v.acked and not v.maybe]
            env = self.ledger.tag(self.repo, "production")
            expect = env.acked if not env.maybe else None
        if not known or (env.acked and expect is None):
            return
        tag, digest = self.rng.choice(known)
        req = {"reference": tag, "to": "production", "reason": "power cut test"}
        if expect:
            req["expect"] = expect
        with self.lock:
            env.maybe.add(digest)
        status, _, text = self.c.call("POST", f"/api/v1/repositories/{self.repo}/promote",
                                      json.dumps(req).encode(),
                                      {"Content-Type": "application/json"})
        if status != 200:
            raise AssertionError(f"promote {status}: {text[:200]!r}")
        with self.lock:
            env.acked, env.maybe = digest, set()
            self.ledger.acks += 1

    def chunked(self):
        with self.lock:
            mine = [s for r, s in self.ledger.sessions if r == self.repo]
        if len(mine) < 2:
            status, h, text = self.c.call("POST", f"/v2/{self.repo}/blobs/uploads/")
            if status != 202:
                raise AssertionError(f"upload POST {status}: {text[:200]!r}")
            s = Session(h["location"], self.data(50_000, 600_000))
            with self.lock:
                self.ledger.sessions.append((self.repo, s))
        else:
            s = self.rng.choice(mine)
        self.send_chunks(s, self.rng.randint(1, 3))
        if s.acked == len(s.data) or self.rng.random() < 0.3:
            self.finish(s)

    def send_chunks(self, s, n):
        for _ in range(n):
            if s.acked >= len(s.data):
                return
            end = min(len(s.data), s.acked + self.rng.randint(20_000, 200_000))
            s.tried.add(end)
            status, h, text = self.c.call(
                "PATCH", s.loc, s.data[s.acked:end],
                {"Content-Type": "application/octet-stream",
                 "Content-Range": f"{s.acked}-{end - 1}"})
            if status != 202:
                raise AssertionError(f"PATCH {status}: {text[:200]!r}")
            if h.get("range") != f"0-{end - 1}":
                raise AssertionError(f"PATCH answered Range {h.get('range')}, sent to {end - 1}")
            with self.lock:
                s.acked = end
                self.ledger.acks += 1

    def finish(self, s):
        rest = s.data[s.acked:]
        s.finishing = True
        s.tried.add(len(s.data))
        sep = "&" if "?" in s.loc else "?"
        status, _, text = self.c.call("PUT", f"{s.loc}{sep}digest={sha256(s.data)}", rest,
                                      {"Content-Type": "application/octet-stream"})
        if status != 201:
            raise AssertionError(f"upload PUT {status}: {text[:200]!r}")
        with self.lock:
            self.ledger.blobs[sha256(s.data)] = s.data
            self.ledger.sessions = [(r, x) for r, x in self.ledger.sessions if x is not s]
            self.ledger.acks += 1

    def junk(self):
        """An untagged manifest pushed and deleted: it must stay deleted."""
        repo = f"{self.repo}-junk"
        config = json.dumps({"junk": self.rng.random()}).encode()
        layers = [self.data(100, 5_000)]
        for b in [config] + layers:
            self.c.push_blob(repo, b)
        body = image(config, layers)
        digest = sha256(body)
        status, _, text = self.c.call("PUT", f"/v2/{repo}/manifests/{digest}", body,
                                      {"Content-Type": OCI_MANIFEST})
        if status == 400 and b"MANIFEST_BLOB_UNKNOWN" in text:
            return
        if status != 201:
            raise AssertionError(f"junk PUT {status}: {text[:200]!r}")
        status, _, text = self.c.call("DELETE", f"/v2/{repo}/manifests/{digest}")
        if status != 202:
            raise AssertionError(f"DELETE {status}: {text[:200]!r}")
        with self.lock:
            self.ledger.deleted.add((repo, digest))
            self.ledger.acks += 1

    def gc(self):
        status, _, text = self.c.call("POST", "/api/v1/gc")
        if status != 200:
            raise AssertionError(f"gc {status}: {text[:200]!r}")


class PowerFs:
    """powerfs.py mounted at WORK/mnt; cut() is a power cut."""

    def __init__(self, work):
        self.mnt, self.state = os.path.join(work, "mnt"), os.path.join(work, "fs")
        os.makedirs(self.mnt, exist_ok=True)
        os.makedirs(self.state, exist_ok=True)
        here = os.path.dirname(os.path.abspath(__file__))
        self.log = open(os.path.join(work, "powerfs.log"), "ab")
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(here, "powerfs.py"),
                                      self.mnt, self.state], stdout=self.log, stderr=self.log)
        self.mounts = 0
        self.wait_mounted()

    def wait_mounted(self):
        for _ in range(300):
            try:
                with open(os.path.join(self.state, "mounted")) as f:
                    n = int(f.read())
                if n > self.mounts and os.path.ismount(self.mnt):
                    self.mounts = n
                    return
            except (FileNotFoundError, ValueError):
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"powerfs exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise SystemExit("powerfs did not mount")

    def unmount(self):
        for _ in range(100):
            if subprocess.run(["umount", self.mnt], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise SystemExit(f"cannot unmount {self.mnt}")

    def cut(self):
        """Drops what was not synced; returns (inodes, bytes) dropped."""
        self.unmount()
        self.wait_mounted()
        with open(os.path.join(self.state, "stats")) as f:
            inodes, lost = f.read().split()
        return int(inodes), int(lost)

    def close(self):
        open(os.path.join(self.state, "stop"), "w").close()
        if os.path.ismount(self.mnt):
            self.unmount()
        self.proc.wait(timeout=10)


class Berth:
    def __init__(self, binary, data, log):
        self.binary, self.data, self.log = binary, data, log
        self.proc = None
        s = __import__("socket").socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.env = dict(os.environ, BERTH_GC__GRACE_PERIOD="0s",
                        BERTH_REGISTRY__DELETE_ENABLED="true", RUST_LOG="warn")

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data],
            env=self.env, stdout=self.log, stderr=self.log)
        c = Client(self.port)
        for _ in range(300):
            try:
                if c.call("GET", "/v2/")[0] == 200:
                    return c
            except Down:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"berth exited with {self.proc.returncode} on start")
            time.sleep(0.05)
        raise AssertionError("berth did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def fsck(self, *args):
        out = subprocess.run([self.binary, "fsck", "--data-dir", self.data, *args],
                             env=self.env, capture_output=True)
        return json.loads(out.stdout)


def verify(c, ledger):
    """Checks a restarted server against the ledger, then brings the ledger
    to what the server holds (a move in flight may have landed or not)."""
    problems = []
    for (repo, tag), t in sorted(ledger.tags.items()):
        status, h, body = c.call("GET", f"/v2/{repo}/manifests/{tag}",
                                 headers={"Accept": OCI_MANIFEST})
        got = h.get("docker-content-digest") if status == 200 else None
        if got not in t.allowed():
            problems.append(f"{repo}:{tag} is {got} ({status}), acknowledged {t.acked}"
                            f" (or one of {sorted(t.maybe)})")
            t.acked, t.maybe = got, set()
            continue
        if got and (sha256(body) != got or ledger.manifests.get(got) != body):
            problems.append(f"{repo}:{tag} reads back other bytes than were pushed")
        _, _, hist = c.call("GET", f"/api/v1/repositories/{repo}/tags/{tag}/history?n=1")
        entries = json.loads(hist).get("history", []) if hist else []
        last = entries[0]["to"] if entries else None
        if last != got:
            problems.append(f"{repo}:{tag} is {got} but its history ends at {last}")
        t.acked, t.maybe = got, set()
    for repo, digest in sorted(ledger.deleted):
        status, _, _ = c.call("HEAD", f"/v2/{repo}/manifests/{digest}")
        if status != 404:
            problems.append(f"deleted manifest {repo}@{digest} answers {status}")
    problems += verify_listing(c)
    problems += resume_uploads(c, ledger)
    return problems


def verify_listing(c):
    """Every repository and tag listed reads back whole, layers included."""
    problems = []
    status, _, body = c.call("GET", "/v2/_catalog?n=10000")
    repos = json.loads(body)["repositories"] if status == 200 else []
    if status != 200:
        problems.append(f"catalog answers {status}")
    for repo in repos:
        status, _, body = c.call("GET", f"/v2/{repo}/tags/list")
        for tag in (json.loads(body).get("tags") or []) if status == 200 else []:
            status, h, m = c.call("GET", f"/v2/{repo}/manifests/{tag}",
                                  headers={"Accept": OCI_MANIFEST})
            if status != 200 or sha256(m) != h.get("docker-content-digest"):
                problems.append(f"listed {repo}:{tag} answers {status} or other bytes")
                continue
            doc = json.loads(m)
            for d in [doc["config"]] + doc["layers"]:
                status, _, b = c.call("GET", f"/v2/{repo}/blobs/{d['digest']}")
                if status != 200 or sha256(b) != d["digest"] or len(b) != d["size"]:
                    problems.append(f"{repo}:{tag} blob {d['digest']} answers {status}"
                                    f" with {len(b)} bytes")
    return problems


def whole_blobs(data):
    """No partial content at a content address, even one nothing records."""
    problems = []
    for dirpath, _, files in os.walk(os.path.join(data, "blobs")):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != name:
                    problems.append(f"{os.path.join(dirpath, name)} holds other bytes")
    return problems


def resume_uploads(c, ledger):
    """Each open session goes on from where the server says it is."""
    problems = []
    for repo, s in list(ledger.sessions):
        ledger.sessions.remove((repo, s))
        digest = sha256(s.data)
        status, h, _ = c.call("GET", s.loc)
        if status == 404:
            if s.acked > 0 and not s.finishing:
                problems.append(f"upload {s.loc} with {s.acked} bytes acknowledged is gone")
            elif s.finishing:
                status, _, b = c.call("GET", f"/v2/{repo}/blobs/{digest}")
                if status == 200 and sha256(b) != digest:
                    problems.append(f"finished upload {digest} reads back other bytes")
            continue
        if status != 204:
            problems.append(f"upload {s.loc} answers {status}")
            continue
        # An empty session answers "0-0", as for one byte; chunks here are
        # never one byte long.
        at = int(h["range"].split("-")[1]) + 1 if h.get("range") else 0
        at = 0 if at == 1 else at
        if at not in s.tried or at < s.acked:
            problems.append(f"upload {s.loc} resumes at {at}: acknowledged {s.acked},"
                            f" sent up to {sorted(s.tried)}")
            continue
        sep = "&" if "?" in s.loc else "?"
        status, _, text = c.call("PUT", f"{s.loc}{sep}digest={digest}", s.data[at:],
                                 {"Content-Type": "application/octet-stream"})
        got = c.call("GET", f"/v2/{repo}/blobs/{digest}")
        if status != 201 or got[0] != 200 or sha256(got[2]) != digest:
            problems.append(f"resumed upload at {at} finishes {status} {text[:100]!r},"
                            f" reads {got[0]}")
        else:
            ledger.blobs[digest] = s.data
    return problems


def self_test(fs):
    """The file system really forgets: otherwise every later check is moot."""
    d = os.path.join(fs.mnt, "selftest")
    os.mkdir(d)
    kept = os.path.join(d, "kept")
    with open(kept, "wb") as f:
        f.write(b"kept")
        f.flush()
        os.fsync(f.fileno())
    for p in (d, fs.mnt):
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    with open(os.path.join(d, "unsynced"), "wb") as f:
        f.write(b"gone")
    with open(kept, "ab") as f:
        f.write(b" and more")
    os.rename(kept, os.path.join(d, "moved"))
    fs.cut()
    names = sorted(os.listdir(d))
    with open(kept, "rb") as f:
        content = f.read()
    assert names == ["kept"] and content == b"kept", f"after a cut: {names}, {content!r}"
    subprocess.run(["rm", "-rf", d], check=True)


def main():
    binary, work = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else random.randrange(1 << 30)
    print(f"# seed {seed} (powercut.py BERTH WORK {rounds} {seed} repeats this run)")
    rng = random.Random(seed)
    passed = failed = 0

    def report(name, problems):
        nonlocal passed, failed
        if problems:
            failed += 1
            print(f"FAIL {name}")
            for p in problems[:20]:
                print(f"     {p}")
        else:
            passed += 1
            print(f"ok   {name}")

    fs = PowerFs(work)
    log = open(os.path.join(work, "berth.log"), "ab")
    try:
        try:
            self_test(fs)
            report("powerfs drops unsynced data, names and renames on a cut", [])
        except AssertionError as e:
            report("powerfs drops unsynced data, names and renames on a cut", [str(e)])
            return 1
        data = os.path.join(fs.mnt, "data")
        os.mkdir(data)
        fd = os.open(fs.mnt, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        berth = Berth(binary, data, log)
        ledger, lock = Ledger(), threading.Lock()
        dropped = [0, 0]
        for n in range(1, rounds + 1):
            c = berth.start()
            if n > 1:
                report(f"round {n - 1}: every acknowledged write is back after the cut",
                       verify(c, ledger))
            before = ledger.acks
            stop, errors = threading.Event(), []
            workers = [Worker(i, c, ledger, lock, stop, random.Random(rng.random()), errors)
                       for i in range(WORKERS)]
            for w in workers:
                w.start()
            time.sleep(rng.uniform(0.3, 2.5))
            berth.kill()
            stop.set()
            for w in workers:
                w.join()
            report(f"round {n}: {ledger.acks - before} writes acknowledged before the cut"
                   " (no refusals)", errors)
            inodes, lost = fs.cut()
            dropped[0] += inodes
            dropped[1] += lost
            result = berth.fsck()
            bad = {k: result.get(k) for k in ("missing", "corrupt", "dangling", "database")
                   if result.get(k)}
            orphans = result.get("orphaned", [])
            report(f"round {n}: fsck after the cut finds nothing missing, corrupt or dangling"
                   f" (dropped {inodes} files, {lost} bytes; {len(orphans)} orphans)",
                   [json.dumps(bad)] if bad else [])
            report(f"round {n}: every stored blob, recorded or not, hashes to its name",
                   whole_blobs(data))
            # Orphans (content stored whose record the cut took) are what
            # `fsck --repair` is for; afterwards fsck is clean.
            berth.fsck("--repair")
            left = {k: v for k, v in berth.fsck().items() if isinstance(v, list) and v}
            report(f"round {n}: fsck --repair leaves it clean", [json.dumps(left)] if left else [])
        c = berth.start()
        report(f"round {rounds}: every acknowledged write is back after the cut", verify(c, ledger))
        berth.kill()
        report(f"the cuts dropped data ({dropped[0]} files, {dropped[1]} bytes in all)",
               [] if dropped[1] > 0 else ["nothing was ever dropped: the test tests nothing"])
    finally:
        fs.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
