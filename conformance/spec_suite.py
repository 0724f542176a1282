"""Black-box checks of the OCI distribution spec v1.1 over HTTP, grouped by the
spec's four workflows. Prints "ok NAME" or "FAIL NAME (why)" per check and
keeps going after a failure. Reads the registry URL and a fresh namespace from
CONFORMANCE_URL and CONFORMANCE_NS."""

import hashlib
import json
import os
import random

import requests

from checks import check, expect

URL = os.environ["CONFORMANCE_URL"].rstrip("/")
NS = os.environ["CONFORMANCE_NS"]
REPO = f"{NS}/spec"
OTHER = f"{NS}/spec-other"
S = requests.Session()
if os.environ.get("CONFORMANCE_USER"):
    # Against a registry with access control: every request signs in.
    S.auth = (os.environ["CONFORMANCE_USER"], os.environ.get("CONFORMANCE_PASSWORD", ""))

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
ERROR_CODES = {
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
    "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
}


def digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def data(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def desc(media_type: str, b: bytes) -> dict:
    return {"mediaType": media_type, "digest": digest(b), "size": len(b)}


def u(path: str) -> str:
    """A URL for a path or for a Location header, which may be absolute."""
    return path if path.startswith("http") else URL + path


def status(r, *codes):
    expect(r.status_code in codes, f"{r.request.method} {r.url}: {r.status_code}, want {codes}: {r.text[:200]}")
    return r


def oci_error(r, *codes):
    body = r.json()
    errs = body.get("errors") or []
    expect(errs and errs[0].get("code") in ERROR_CODES, f"not an OCI error body: {body}")
    if codes:
        expect(errs[0]["code"] in codes, f"code {errs[0]['code']}, want {codes}")


def push_blob(repo: str, b: bytes) -> str:
    r = status(S.post(u(f"/v2/{repo}/blobs/uploads/")), 202)
    loc = r.headers["Location"]
    status(S.put(u(loc), params={"digest": digest(b)}, data=b,
                 headers={"Content-Type": "application/octet-stream"}), 201)
    return digest(b)


def manifest(config: bytes, layers, **extra) -> bytes:
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(OCI_CONFIG, config),
         "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", l) for l in layers]}
    m.update(extra)
    return json.dumps(m, indent=2).encode()


def put_manifest(repo, ref, body, media_type=OCI_MANIFEST):
    return S.put(u(f"/v2/{repo}/manifests/{ref}"), data=body, headers={"Content-Type": media_type})


CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "seed": NS}).encode()
LAYER = data(1, 300_000)
MANIFEST = manifest(CONFIG, [LAYER])
DUMMY = "sha256:" + "0" * 64

# ---------------------------------------------------------------- push


@check("push: version check answers 200 with Docker-Distribution-API-Version")
def _():
    r = status(S.get(u("/v2/")), 200)
    expect(r.headers.get("Docker-Distribution-API-Version") == "registry/2.0", "header missing")


@check("push: POST then PUT with body (monolithic) answers 201 with Location")
def _():
    push_blob(REPO, CONFIG)


@check("push: single POST with ?digest= stores the blob whole (201)")
def _():
    # The spec lets a registry answer 202 and ignore the body; Berth promises 201.
    b = data(6, 50_000)
    r = status(S.post(u(f"/v2/{REPO}/blobs/uploads/"), params={"digest": digest(b)}, data=b), 201)
    expect(r.headers.get("Location"), "no Location")
    status(S.head(u(f"/v2/{REPO}/blobs/{digest(b)}")), 200)


@check("push: the layer for later checks is pushed with POST and PUT")
def _():
    push_blob(REPO, LAYER)


@check("push: streamed PATCH then PUT answers 202 then 201")
def _():
    b = data(2, 100_000)
    r = status(S.post(u(f"/v2/{REPO}/blobs/uploads/")), 202)
    r = status(S.patch(u(r.headers["Location"]), data=b, headers={"Content-Type": "application/octet-stream"}), 202)
    status(S.put(u(r.headers["Location"]), params={"digest": digest(b)}), 201)


@check("push: chunked upload with Content-Range, out-of-order 416, status 204 with Range")
def _():
    b = data(3, 2_500_000)
    r = status(S.post(u(f"/v2/{REPO}/blobs/uploads/")), 202)
    loc = u(r.headers["Location"])
    half = len(b) // 2
    status(S.patch(loc, data=b[half:], headers={"Content-Range": f"{half}-{len(b) - 1}"}), 416)
    r = status(S.patch(loc, data=b[:half], headers={"Content-Range": f"0-{half - 1}"}), 202)
    expect(r.headers.get("Range") == f"0-{half - 1}", f"Range {r.headers.get('Range')}")
    status(S.patch(loc, data=b[:half], headers={"Content-Range": f"0-{half - 1}"}), 416)
    r = status(S.get(loc), 204)
    expect(r.headers.get("Range") == f"0-{half - 1}" and r.headers.get("Location"), "status headers")
    r = status(S.patch(u(r.headers["Location"]), data=b[half:], headers={"Content-Range": f"{half}-{len(b) - 1}"}), 202)
    status(S.put(u(r.headers["Location"]), params={"digest": digest(b)}), 201)
    expect(S.get(u(f"/v2/{REPO}/blobs/{digest(b)}")).content == b, "content differs")


@check("push: a wrong digest is refused with DIGEST_INVALID and nothing is stored")
def _():
    r = status(S.post(u(f"/v2/{REPO}/blobs/uploads/")), 202)
    r = status(S.put(u(r.headers["Location"]), params={"digest": digest(b"other")}, data=b"content"), 400)
    oci_error(r, "DIGEST_INVALID")
    status(S.head(u(f"/v2/{REPO}/blobs/{digest(b'other')}")), 404)
    status(S.head(u(f"/v2/{REPO}/blobs/{digest(b'content')}")), 404)


@check("push: cross-repository mount with from answers 201 and the blob is readable")
def _():
    r = status(S.post(u(f"/v2/{OTHER}/blobs/uploads/"), params={"mount": digest(LAYER), "from": REPO}), 201)
    expect(r.headers["Location"].endswith(f"/v2/{OTHER}/blobs/{digest(LAYER)}"), r.headers["Location"])
    status(S.head(u(f"/v2/{OTHER}/blobs/{digest(LAYER)}")), 200)


@check("push: mounting an unknown blob opens an upload session (202)")
def _():
    r = status(S.post(u(f"/v2/{OTHER}/blobs/uploads/"), params={"mount": DUMMY, "from": REPO}), 202)
    expect(f"/v2/{OTHER}/blobs/uploads/" in r.headers["Location"], r.headers["Location"])


@check("push: mounting without from (automatic mount) answers 201")
def _():
    status(S.post(u(f"/v2/{NS}/spec-auto/blobs/uploads/"), params={"mount": digest(LAYER)}), 201)


@check("push: manifest PUT by tag answers 201 with Location and Docker-Content-Digest")
def _():
    r = status(put_manifest(REPO, "v1", MANIFEST), 201)
    expect(r.headers.get("Docker-Content-Digest") == digest(MANIFEST), "digest header")
    expect(r.headers.get("Location"), "no Location")


@check("push: a manifest with an unknown layer is MANIFEST_BLOB_UNKNOWN")
def _():
    oci_error(status(put_manifest(REPO, "broken", manifest(CONFIG, [data(9, 10)])), 400, 404), "MANIFEST_BLOB_UNKNOWN")


@check("push: a manifest with no layers is accepted")
def _():
    status(put_manifest(REPO, "empty", manifest(CONFIG, [])), 201)


@check("push: an image index over pushed manifests is accepted")
def _():
    idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(OCI_MANIFEST, MANIFEST)]}).encode()
    status(put_manifest(REPO, "index", idx, OCI_INDEX), 201)


@check("push: a manifest too large answers 413")
def _():
    big = manifest(CONFIG, [LAYER], annotations={"pad": "x" * (5 * 1024 * 1024)})
    status(put_manifest(REPO, "huge", big), 413)


@check("push: PUT by digest must match the content")
def _():
    oci_error(status(put_manifest(REPO, digest(b"nope"), MANIFEST), 400), "DIGEST_INVALID")
    status(put_manifest(REPO, digest(MANIFEST), MANIFEST), 201)

# ---------------------------------------------------------------- pull


@check("pull: HEAD and GET of an existing blob answer 200 with its digest and length")
def _():
    r = status(S.head(u(f"/v2/{REPO}/blobs/{digest(LAYER)}")), 200)
    expect(r.headers.get("Content-Length") == str(len(LAYER)), "length")
    expect(r.headers.get("Docker-Content-Digest") == digest(LAYER), "digest")
    expect(S.get(u(f"/v2/{REPO}/blobs/{digest(LAYER)}")).content == LAYER, "content")


@check("pull: unknown blobs answer 404 BLOB_UNKNOWN")
def _():
    status(S.head(u(f"/v2/{REPO}/blobs/{DUMMY}")), 404)
    oci_error(status(S.get(u(f"/v2/{REPO}/blobs/{DUMMY}")), 404), "BLOB_UNKNOWN")


@check("pull: range reads answer 206 with Content-Range")
def _():
    r = status(S.get(u(f"/v2/{REPO}/blobs/{digest(LAYER)}"), headers={"Range": "bytes=10-19"}), 206)
    expect(r.content == LAYER[10:20], "range content")
    expect(r.headers.get("Content-Range") == f"bytes 10-19/{len(LAYER)}", r.headers.get("Content-Range"))


@check("pull: manifests by tag and digest return the exact bytes")
def _():
    for ref in ("v1", digest(MANIFEST)):
        r = status(S.get(u(f"/v2/{REPO}/manifests/{ref}"), headers={"Accept": OCI_MANIFEST}), 200)
        expect(r.content == MANIFEST, "bytes differ")
        expect(r.headers.get("Content-Type") == OCI_MANIFEST, "content type")
        expect(r.headers.get("Docker-Content-Digest") == digest(MANIFEST), "digest")
        status(S.head(u(f"/v2/{REPO}/manifests/{ref}"), headers={"Accept": OCI_MANIFEST}), 200)


@check("pull: unknown manifests answer 404 MANIFEST_UNKNOWN")
def _():
    oci_error(status(S.get(u(f"/v2/{REPO}/manifests/nope")), 404), "MANIFEST_UNKNOWN")


@check("pull: HEAD and GET of a reference that names nothing (.INVALID_MANIFEST_NAME) answer 404")
def _():
    # The official suite's nonexistentManifest: not a valid tag, so it can
    # name no stored manifest; reading it is "not found", not "bad request".
    status(S.head(u(f"/v2/{REPO}/manifests/.INVALID_MANIFEST_NAME")), 404)
    oci_error(status(S.get(u(f"/v2/{REPO}/manifests/.INVALID_MANIFEST_NAME")), 404), "MANIFEST_UNKNOWN")


@check("push: a Content-Range other than <start>-<end> is refused and the session stays")
def _():
    b = data(5, 2000)
    r = status(S.post(u(f"/v2/{REPO}/blobs/uploads/")), 202)
    loc = u(r.headers["Location"])
    r = status(S.patch(loc, data=b[:1000], headers={"Content-Range": "0-999"}), 202)
    for bad in ("bytes=1000-1999", "bytes 1000-1999/2000", "+1000-1999", "1000-", "1000 - 1999"):
        status(S.patch(loc, data=b[1000:], headers={"Content-Range": bad}), 400, 416)
        r = status(S.get(loc), 204)
        expect(r.headers.get("Range") == "0-999", f"{bad!r} moved the session to {r.headers.get('Range')}")
    r = status(S.patch(loc, data=b[1000:], headers={"Content-Range": "1000-1999"}), 202)
    status(S.put(u(r.headers["Location"]), params={"digest": digest(b)}), 201)


@check("pull: a blob of another repository is not readable")
def _():
    secret = data(4, 100)
    push_blob(f"{NS}/private", secret)
    status(S.get(u(f"/v2/{NS}/public/blobs/{digest(secret)}")), 404)


@check("pull: error bodies are OCI JSON (invalid reference, invalid name)")
def _():
    oci_error(status(put_manifest(REPO, "sha256:totallywrong", b"{}"), 400, 404))
    oci_error(status(S.get(u("/v2/Bad_Name/tags/list")), 400, 404))

# ---------------------------------------------------------------- content discovery


@check("discovery: setup pushes a repository's blobs for tagging")
def _():
    push_blob(f"{NS}/tags", CONFIG)
    push_blob(f"{NS}/tags", LAYER)


@check("discovery: tags are listed in lexical order and paginate with n, last and Link")
def _():
    for t in ("t3", "t1", "t2", "t4"):
        status(put_manifest(f"{NS}/tags", t, MANIFEST), 201)
    r = status(S.get(u(f"/v2/{NS}/tags/tags/list")), 200)
    expect(r.json()["tags"] == ["t1", "t2", "t3", "t4"], r.text)
    r = status(S.get(u(f"/v2/{NS}/tags/tags/list"), params={"n": 2}), 200)
    expect(r.json()["tags"] == ["t1", "t2"], r.text)
    expect('rel="next"' in r.headers.get("Link", ""), "no Link")
    r = status(S.get(u(f"/v2/{NS}/tags/tags/list"), params={"n": 2, "last": "t2"}), 200)
    expect(r.json()["tags"] == ["t3", "t4"], r.text)


@check("discovery: referrers list artifacts by subject, filtered by artifactType")
def _():
    empty = b"{}"
    push_blob(REPO, empty)
    made = {}
    for kind in ("sig", "sbom"):
        m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "artifactType": f"application/vnd.example.{kind}",
                        "config": desc(OCI_EMPTY, empty), "layers": [desc(OCI_EMPTY, empty)],
                        "subject": desc(OCI_MANIFEST, MANIFEST), "annotations": {"kind": kind}}).encode()
        r = status(put_manifest(REPO, digest(m), m), 201)
        expect(r.headers.get("OCI-Subject") == digest(MANIFEST), "OCI-Subject")
        made[kind] = digest(m)
    r = status(S.get(u(f"/v2/{REPO}/referrers/{digest(MANIFEST)}")), 200)
    expect(r.headers.get("Content-Type") == OCI_INDEX, "content type")
    entries = {e["digest"]: e for e in r.json()["manifests"]}
    expect(set(made.values()) <= set(entries), f"listed {list(entries)}")
    expect(entries[made["sig"]]["annotations"] == {"kind": "sig"}, "annotations")
    r = status(S.get(u(f"/v2/{REPO}/referrers/{digest(MANIFEST)}"), params={"artifactType": "application/vnd.example.sbom"}), 200)
    expect(r.headers.get("OCI-Filters-Applied") == "artifactType", "OCI-Filters-Applied")
    expect([e["digest"] for e in r.json()["manifests"]] == [made["sbom"]], r.text)


@check("discovery: referrers of an unknown subject are an empty index")
def _():
    r = status(S.get(u(f"/v2/{REPO}/referrers/{DUMMY}")), 200)
    expect(r.json().get("manifests") == [], r.text)


@check("discovery: a dangling subject is accepted")
def _():
    empty = b"{}"
    m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-dangling",
                    "config": desc(OCI_EMPTY, empty), "layers": [],
                    "subject": {"mediaType": OCI_MANIFEST, "digest": DUMMY, "size": 2}}).encode()
    r = status(put_manifest(REPO, digest(m), m), 201)
    expect(r.headers.get("OCI-Subject") == DUMMY, "OCI-Subject")


@check("discovery: the catalog lists this run's repositories, page by page")
def _():
    seen, path = [], "/v2/_catalog?n=100"
    while path:
        r = status(S.get(u(path)), 200)
        seen += r.json()["repositories"]
        link = r.headers.get("Link", "")
        path = link[link.index("<") + 1:link.index(">")] if "<" in link else None
    expect(REPO in seen and OTHER in seen, "repositories not listed")
    expect(seen == sorted(seen), "not in lexical order")

# ---------------------------------------------------------------- content management


@check("management: DELETE of a tag removes the tag only")
def _():
    status(put_manifest(REPO, "gone", MANIFEST), 201)
    status(S.delete(u(f"/v2/{REPO}/manifests/gone")), 202)
    status(S.get(u(f"/v2/{REPO}/manifests/gone")), 404)
    status(S.get(u(f"/v2/{REPO}/manifests/{digest(MANIFEST)}")), 200)


@check("management: DELETE of a manifest by digest answers 202, then 404 and tags go")
def _():
    repo = f"{NS}/delete"
    push_blob(repo, CONFIG)
    push_blob(repo, LAYER)
    status(put_manifest(repo, "x", MANIFEST), 201)
    status(S.delete(u(f"/v2/{repo}/manifests/{digest(MANIFEST)}")), 202)
    status(S.get(u(f"/v2/{repo}/manifests/{digest(MANIFEST)}")), 404)
    expect("x" not in (S.get(u(f"/v2/{repo}/tags/list")).json().get("tags") or []), "tag kept")


@check("management: DELETE of a blob answers 202, then 404")
def _():
    repo = f"{NS}/delete-blob"
    d = push_blob(repo, data(5, 1000))
    status(S.delete(u(f"/v2/{repo}/blobs/{d}")), 202)
    status(S.get(u(f"/v2/{repo}/blobs/{d}")), 404)


@check("management: cancelling an upload makes the session unknown")
def _():
    r = status(S.post(u(f"/v2/{REPO}/blobs/uploads/")), 202)
    loc = u(r.headers["Location"])
    status(S.delete(loc), 204)
    oci_error(status(S.get(loc), 404), "BLOB_UPLOAD_UNKNOWN")

