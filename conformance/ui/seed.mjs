// Content for the web UI's tests, pushed through the OCI API as clients do:
// datasets, a base model, three versions of a model with lineage annotations
// and evaluation referrers, promotions and a rollback, an image index with
// two platforms, and a repository only some users may pull.
import { createHash } from "node:crypto";

const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const INDEX = "application/vnd.oci.image.index.v1+json";
export const EVALUATION = "application/vnd.berth.evaluation.v1+json";

export const sha256 = (bytes) => "sha256:" + createHash("sha256").update(bytes).digest("hex");

export class Client {
  constructor(base, user, password) {
    this.base = base;
    this.auth = user ? "Basic " + Buffer.from(`${user}:${password}`).toString("base64") : null;
  }

  async call(method, path, body, headers = {}) {
    const h = { ...headers };
    if (this.auth) h.authorization = this.auth;
    const r = await fetch(this.base + path, { method, body, headers: h, redirect: "manual" });
    return r;
  }

  async ok(method, path, body, headers) {
    const r = await this.call(method, path, body, headers);
    if (r.status >= 300) {
      throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
    }
    return r;
  }

  async blob(repo, bytes) {
    const data = typeof bytes === "string" ? Buffer.from(bytes) : bytes;
    const digest = sha256(data);
    const start = await this.ok("POST", `/v2/${repo}/blobs/uploads/`);
    const loc = start.headers.get("location");
    const sep = loc.includes("?") ? "&" : "?";
    await this.ok("PUT", `${loc}${sep}digest=${digest}`, data, {
      "content-type": "application/octet-stream",
    });
    return { digest, size: data.length };
  }

  async manifest(repo, reference, doc) {
    const bytes = Buffer.from(JSON.stringify(doc));
    await this.ok("PUT", `/v2/${repo}/manifests/${reference}`, bytes, {
      "content-type": doc.mediaType,
    });
    return { mediaType: doc.mediaType, digest: sha256(bytes), size: bytes.length };
  }

  /** An artifact of `layers` ([bytes, mediaType, title]) with an empty config. */
  async artifact(repo, tag, artifactType, layers, annotations = {}, subject) {
    const config = await this.blob(repo, "{}");
    const descriptors = [];
    for (const [bytes, mediaType, title] of layers) {
      const b = await this.blob(repo, bytes);
      descriptors.push({
        mediaType,
        ...b,
        annotations: { "org.opencontainers.image.title": title },
      });
    }
    const doc = {
      schemaVersion: 2,
      mediaType: MANIFEST,
      artifactType,
      config: { mediaType: "application/vnd.oci.empty.v1+json", ...config },
      layers: descriptors,
      annotations,
    };
    if (subject) doc.subject = subject;
    return this.manifest(repo, tag ?? sha256(Buffer.from(JSON.stringify(doc))), doc);
  }

  async evaluation(repo, subject, metrics) {
    const report = JSON.stringify({ metrics });
    return this.artifact(repo, null, EVALUATION, [[report, "application/json", "evaluation.json"]],
      {}, subject);
  }

  async post(path, body) {
    return this.call("POST", path, JSON.stringify(body), { "content-type": "application/json" });
  }
}

/** An image (config and one layer) for `arch`, pushed by digest. */
async function image(c, repo, arch) {
  const config = await c.blob(repo, JSON.stringify({
    architecture: arch, os: "linux", rootfs: { type: "layers", diff_ids: [] },
    config: { Cmd: ["/bin/app"] },
  }));
  const layer = await c.blob(repo, `layer for ${arch}`);
  const doc = {
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
  };
  return c.manifest(repo, sha256(Buffer.from(JSON.stringify(doc))), doc);
}

/** A protocol 0 pickle of {"model": name}: plain data the scanner calls clean. */
const pickled = (name) => `(dp0\nVmodel\np1\nV${name}\np2\ns.`;

/** Pushes everything; returns the digests the tests look for. */
export async function seed(c) {
  const csv = "application/vnd.example.dataset.csv";
  const dataOct = await c.artifact("data/churn", "2026-10", "application/vnd.example.dataset.v1",
    [["id,churned\n1,0\n2,1\n", csv, "churn-2026-10.csv"]]);
  const dataNov = await c.artifact("data/churn", "2026-11", "application/vnd.example.dataset.v1",
    [["id,churned\n1,0\n2,1\n3,1\n", csv, "churn-2026-11.csv"]]);
  const base = await c.artifact("llm/base", "v1", "application/vnd.example.model.v1",
    [["base weights", "application/octet-stream", "base.safetensors"]]);
  const model = "application/vnd.example.model.v1";
  const source = { "org.opencontainers.image.source": "https://git.example/churn" };
  const v1 = await c.artifact("models/churn", "v1", model,
    [[pickled("churn-one"), "application/octet-stream", "model.pkl"]], {
      ...source,
      "org.opencontainers.image.revision": "3f2c1e0b9a8d",
      "io.berth.lineage.datasets": "data/churn:2026-10",
      "io.berth.lineage.parents": "llm/base:v1",
    });
  const v2 = await c.artifact("models/churn", "v2", model,
    [[pickled("churn-two"), "application/octet-stream", "model.pkl"],
      ["tokenizer", "application/json", "tokenizer.json"]], {
      ...source,
      "org.opencontainers.image.revision": "9c8d7e6f5a4b",
      "io.berth.lineage.datasets": "data/churn:2026-11",
      "io.berth.lineage.parents": "models/churn:v1",
    });
  const v3 = await c.artifact("models/churn", "v3", model,
    [[pickled("churn-three"), "application/octet-stream", "model.pkl"]], {
      ...source,
      "org.opencontainers.image.revision": "1a2b3c4d5e6f",
      "io.berth.lineage.datasets": "data/churn:2026-11",
      "io.berth.lineage.parents": "models/churn:v2",
    });
  await c.evaluation("models/churn", v1, { auc: 0.91, loss: 0.31 });
  await c.evaluation("models/churn", v2, { auc: 0.95, loss: 0.22 });
  await c.evaluation("models/churn", v3, { auc: 0.8, loss: 0.4 });
  for (const [reference, reason] of [["v1", "first release"], ["v2", "better auc"]]) {
    const r = await c.post("/api/v1/repositories/models/churn/promote",
      { reference, to: "production", reason });
    if (r.status !== 200) throw new Error(`promote ${reference}: ${r.status} ${await r.text()}`);
  }
  const back = await c.post("/api/v1/repositories/models/churn/rollback",
    { tag: "production", reason: "latency regression" });
  if (back.status !== 200) throw new Error(`rollback: ${back.status} ${await back.text()}`);

  const amd64 = await image(c, "library/app", "amd64");
  const arm64 = await image(c, "library/app", "arm64");
  await c.manifest("library/app", "1.0", {
    schemaVersion: 2,
    mediaType: INDEX,
    manifests: [
      { ...amd64, platform: { os: "linux", architecture: "amd64" } },
      { ...arm64, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    ],
  });
  await c.artifact("secret/weights", "v1", model,
    [["secret weights", "application/octet-stream", "weights.bin"]]);
  return { dataOct, dataNov, base, v1, v2, v3 };
}
