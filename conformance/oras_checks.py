"""ORAS checks with the oras Python SDK: a pickled model and a tarball pushed as
one artifact with an artifactType and lineage annotations, pulled back byte for
byte, then an evaluation report and a signature attached as referrers and found
through the referrers API. Prints "ok NAME" / "FAIL NAME (why)" per check."""

import hashlib
import io
import json
import os
import pickle
import random
import tarfile
from pathlib import Path

import oras.client
import oras.oci

from checks import check, expect

URL = os.environ["CONFORMANCE_URL"].rstrip("/")
NS = os.environ["CONFORMANCE_NS"]
WORK = Path(os.environ["CONFORMANCE_WORK"]) / "oras"
HOST = URL.removeprefix("http://")
REPO = f"{NS}/models/churn"
TARGET = f"{HOST}/{REPO}:v1"
MODEL_TYPE = "application/vnd.berth.model.v1"
EVAL_TYPE = "application/vnd.berth.evaluation.v1+json"
SIG_TYPE = "application/vnd.example.signature.v1"
EMPTY = "application/vnd.oci.empty.v1+json"
# Per run, so that registry-wide lineage queries see only this run's models.
DATASET = "sha256:" + hashlib.sha256(f"churn-dataset-{NS}".encode()).hexdigest()
COMMIT = hashlib.sha1(NS.encode()).hexdigest()

client = oras.client.OrasClient(hostname=HOST, insecure=True)
state = {}


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def empty_config(target: str) -> dict:
    path = WORK / "empty.json"
    path.write_bytes(b"{}")
    conf, _ = oras.oci.ManifestConfig(str(path), EMPTY)
    client.upload_blob(str(path), client.get_container(target), conf)
    return conf


def push_artifact(target: str, files, artifact_type: str, annotations: dict, subject=None) -> dict:
    """Uploads files as layers and a manifest with an artifactType (and subject) through the SDK."""
    container = client.get_container(target)
    manifest = oras.oci.NewManifest()
    for path, media_type in files:
        layer = oras.oci.NewLayer(str(path), media_type=media_type)
        layer["annotations"] = {"org.opencontainers.image.title": path.name}
        r = client.upload_blob(str(path), container, layer)
        expect(r.status_code in (200, 201), f"blob upload answered {r.status_code}")
        manifest["layers"].append(layer)
    manifest["config"] = empty_config(target)
    manifest["artifactType"] = artifact_type
    manifest["annotations"] = annotations
    if subject:
        manifest["subject"] = subject
    r = client.upload_manifest(manifest, container)
    expect(r.status_code == 201, f"manifest upload answered {r.status_code}: {r.text[:200]}")
    return {"digest": r.headers["Docker-Content-Digest"], "response": r}


@check("oras: push a pickled model and a tarball with artifactType and lineage annotations")
def _():
    WORK.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    model = {"weights": [rng.random() for _ in range(20_000)], "bias": 0.25, "classes": ["stay", "churn"]}
    (WORK / "model.pkl").write_bytes(pickle.dumps(model, protocol=4))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.USTAR_FORMAT) as tar:
        for name, text in (("tokenizer.json", '{"vocab": 3}'), ("README.txt", "churn model v1\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(text), 946684800
            tar.addfile(info, io.BytesIO(text.encode()))
    (WORK / "extras.tar.gz").write_bytes(buf.getvalue())
    pushed = push_artifact(
        TARGET,
        [(WORK / "model.pkl", "application/vnd.python.pickle"), (WORK / "extras.tar.gz", "application/vnd.berth.model.extras.v1.tar+gzip")],
        MODEL_TYPE,
        {"org.opencontainers.image.revision": COMMIT, "io.berth.lineage.datasets": DATASET},
    )
    state["model"] = pushed["digest"]


@check("oras: the model manifest keeps its artifactType and annotations")
def _():
    m = client.get_manifest(TARGET)
    expect(m.get("artifactType") == MODEL_TYPE, m.get("artifactType"))
    expect(m["annotations"]["io.berth.lineage.datasets"] == DATASET, m["annotations"])
    expect(m["annotations"]["org.opencontainers.image.revision"] == COMMIT, m["annotations"])


@check("oras: pull returns the model and the tarball byte for byte")
def _():
    out = WORK / "pulled"
    files = client.pull(target=TARGET, outdir=str(out))
    expect(len(files) == 2, f"pulled {files}")
    for name in ("model.pkl", "extras.tar.gz"):
        expect(sha256(out / name) == sha256(WORK / name), f"{name} differs")
    expect(pickle.loads((out / "model.pkl").read_bytes())["bias"] == 0.25, "model does not unpickle")


@check("oras: pull by digest works like pull by tag")
def _():
    out = WORK / "pulled-by-digest"
    client.pull(target=f"{HOST}/{REPO}@{state['model']}", outdir=str(out))
    expect(sha256(out / "model.pkl") == sha256(WORK / "model.pkl"), "model differs")


@check("oras: attach an evaluation report and a signature to the model (subject)")
def _():
    m = client.get_manifest(f"{HOST}/{REPO}@{state['model']}")
    raw = json.dumps(m)  # only for the size fallback below
    r = client.do_request(f"{URL}/v2/{REPO}/manifests/{state['model']}", "HEAD",
                          headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    size = int(r.headers.get("Content-Length", len(raw)))
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": state["model"], "size": size}
    (WORK / "eval.json").write_text(json.dumps({"metrics": {"auc": 0.91, "f1": 0.84}, "dataset": DATASET}))
    ev = push_artifact(f"{HOST}/{REPO}:eval", [(WORK / "eval.json", EVAL_TYPE)], EVAL_TYPE, {"io.berth.eval": "holdout"}, subject)
    (WORK / "model.sig").write_bytes(hashlib.sha512(state["model"].encode()).digest())
    sig = push_artifact(f"{HOST}/{REPO}:sig", [(WORK / "model.sig", "application/octet-stream")], SIG_TYPE, {"io.berth.signer": "ci"}, subject)
    state["eval"], state["sig"] = ev["digest"], sig["digest"]
    for pushed in (ev, sig):
        expect(pushed["response"].headers.get("OCI-Subject") == state["model"], "no OCI-Subject")


@check("oras: referrers discovery finds both, and filters by artifactType")
def _():
    r = client.do_request(f"{URL}/v2/{REPO}/referrers/{state['model']}", "GET")
    found = {e["digest"]: e.get("artifactType") for e in r.json()["manifests"]}
    expect(found.get(state["eval"]) == EVAL_TYPE and found.get(state["sig"]) == SIG_TYPE, f"found {found}")
    r = client.do_request(f"{URL}/v2/{REPO}/referrers/{state['model']}?artifactType={EVAL_TYPE}", "GET")
    expect([e["digest"] for e in r.json()["manifests"]] == [state["eval"]], r.text[:300])


@check("oras: tags listed through the SDK")
def _():
    tags = client.get_tags(f"{HOST}/{REPO}")
    expect(sorted(tags) == ["eval", "sig", "v1"], tags)


# Berth extensions: lineage of what the SDK pushed (CNCF Distribution has none).
@check("berth lineage: the model is found by its dataset digest and by a commit prefix")
def _():
    for query in (f"dataset={DATASET}", f"commit={COMMIT[:8]}"):
        r = client.do_request(f"{URL}/api/v1/lineage?{query}", "GET")
        found = [m["digest"] for m in r.json()["models"]]
        expect(found == [state["model"]], f"{query}: {found}")


@check("berth lineage: a lineage document attached with the SDK adds a run and a parent")
def _():
    base = push_artifact(f"{HOST}/{NS}/models/base:v1", [(WORK / "model.pkl", "application/vnd.python.pickle")], MODEL_TYPE, {})
    r = client.do_request(f"{URL}/v2/{REPO}/manifests/{state['model']}", "HEAD",
                          headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": state["model"],
               "size": int(r.headers["Content-Length"])}
    doc = {"parents": [{"reference": f"{NS}/models/base@{base['digest']}", "relation": "finetune"}],
           "run": {"id": "run-42"}, "parameters": {"epochs": 3}}
    (WORK / "lineage.json").write_text(json.dumps(doc))
    push_artifact(f"{HOST}/{REPO}:lineage", [(WORK / "lineage.json", "application/vnd.berth.lineage.v1+json")],
                  "application/vnd.berth.lineage.v1+json", {}, subject)
    g = client.do_request(f"{URL}/api/v1/lineage/{REPO}/v1", "GET").json()
    edges = {(e["from"], e["relation"]) for e in g["edges"]}
    expect((base["digest"], "finetune") in edges and ("run:run-42", "run") in edges, f"edges {edges}")
