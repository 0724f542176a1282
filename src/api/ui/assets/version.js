// One version (a manifest): what it holds, what is attached to it, how to
// pull it, its evaluations across versions, and promoting it.

import { json, manifest, request, failure, smallBlob, all } from "./api.js";
import { h, table, section, facts, message, field, copyable } from "./dom.js";
import { bytes, short, when, number } from "./format.js";
import { repoUrl, versionUrl, timelineUrl, lineageUrl } from "./repositories.js";
import { metricCharts } from "./chart.js";

export const EVALUATION = "application/vnd.berth.evaluation.v1+json";
const SCAN = "application/vnd.berth.scan.v1+json";
const INDEXES = ["application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json"];
const TITLE = "org.opencontainers.image.title";
/** Versions whose evaluations the chart reads (newest first). */
const CHART_VERSIONS = 20;

export async function version(main, [repo, reference]) {
  const { doc, digest, size } = await manifest(repo, reference);
  const index = INDEXES.includes(doc.mediaType);
  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "/ui/" }, "Repositories"), " / ", h("a", { href: repoUrl(repo) }, repo), " / "),
    h("h1", {}, `${repo}:${reference.startsWith("sha256:") ? short(reference) : reference}`),
    facts([
      ["Digest", h("code", {}, digest)],
      ["Media type", doc.mediaType],
      ["Artifact type", doc.artifactType ?? doc.config?.mediaType],
      ["Manifest size", bytes(size)],
      ["Total size", bytes(size + (doc.layers ?? []).reduce((n, l) => n + l.size, 0)
        + (doc.config?.size ?? 0))],
      ["Subject", doc.subject ? h("a", { href: versionUrl(repo, doc.subject.digest) }, short(doc.subject.digest)) : null],
    ]),
    h("p", { class: "actions" },
      h("a", { href: lineageUrl(repo, digest) }, "Lineage"), " · ",
      h("a", { href: `/ui/r/${repo}/-/diff?to=${encodeURIComponent(digest)}` }, "Compare"), " · ",
      h("a", { href: `/v2/${repo}/manifests/${digest}`, download: `${digest.replace(":", "-")}.json` }, "Manifest JSON")),
  );
  main.append(pull(repo, digest));
  if (index) main.append(platforms(repo, doc));
  if (doc.layers) main.append(layers(repo, doc.layers));
  if (doc.config) main.append(await config(repo, doc.config));
  main.append(annotations(doc.annotations));
  // The tag listing serves both the chart and the promote form: asked once.
  const listing = all(`/api/v1/repositories/${repo}/tags?n=1000`, "tags", 1000);
  const late = [referrers(repo, digest), scanReport(repo, digest), evaluations(repo, digest, listing),
    promote(repo, digest, listing)];
  for (const part of late) {
    const slot = h("div", { class: "slot" }, h("p", { class: "muted" }, "Loading…"));
    main.append(slot);
    part.then((content) => slot.replaceWith(content ?? ""),
      (e) => slot.replaceWith(message("error", String(e.message ?? e))));
  }
  await Promise.allSettled(late);
}

function pull(repo, digest) {
  const at = `${location.host}/${repo}@${digest}`;
  return section("Pull",
    copyable("docker", `docker pull ${at}`),
    copyable("oras", `oras pull ${at}`),
    copyable("kit", `kit pull ${at}`));
}

function platforms(repo, doc) {
  return section("Platforms", table(null, ["Platform", "Digest", "Size"],
    (doc.manifests ?? []).map((m) => {
      const p = m.platform ?? {};
      const name = [p.os, p.architecture, p.variant].filter(Boolean).join("/") || "(none)";
      return [h("a", { href: versionUrl(repo, m.digest) }, name),
        h("code", { title: m.digest }, short(m.digest)), bytes(m.size)];
    })));
}

function layers(repo, list) {
  return section("Layers", table(`${list.length} layer${list.length === 1 ? "" : "s"}`,
    ["#", "Title", "Media type", "Size", "Digest"],
    list.map((l, i) => [String(i + 1), l.annotations?.[TITLE] ?? "", l.mediaType, bytes(l.size),
      h("a", { href: `/v2/${repo}/blobs/${l.digest}`, download: l.annotations?.[TITLE] ?? true },
        h("code", { title: l.digest }, short(l.digest)))])));
}

async function config(repo, descriptor) {
  const text = /json/.test(descriptor.mediaType) ? await smallBlob(repo, descriptor, 64 * 1024) : null;
  let shown = text;
  try {
    shown = text && JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // shown as it is
  }
  return section("Config",
    facts([["Media type", descriptor.mediaType], ["Size", bytes(descriptor.size)],
      ["Digest", h("code", {}, descriptor.digest)]]),
    shown && shown !== "{}" ? h("pre", { class: "json" }, shown) : null);
}

function annotations(map) {
  const entries = Object.entries(map ?? {});
  if (!entries.length) return section("Annotations", h("p", { class: "muted" }, "None."));
  return section("Annotations", table(null, ["Key", "Value"],
    entries.map(([k, v]) => [h("code", {}, k), v])));
}

/** The newest evaluation attached to a digest, as { metrics, at }, or null. */
async function evaluationOf(repo, digest) {
  const found = await json(`/v2/${repo}/referrers/${digest}?artifactType=${encodeURIComponent(EVALUATION)}`);
  const list = found.manifests ?? [];
  let newest = null;
  for (const d of list) {
    const { doc } = await manifest(repo, d.digest);
    const text = await smallBlob(repo, doc.layers?.[0], 64 * 1024);
    try {
      const report = JSON.parse(text);
      const at = doc.annotations?.["org.opencontainers.image.created"] ?? "";
      if (!newest || at > newest.at) newest = { metrics: report.metrics ?? {}, at };
    } catch {
      // not an evaluation report
    }
  }
  return newest;
}

async function referrers(repo, digest) {
  const found = await json(`/v2/${repo}/referrers/${digest}`);
  const list = found.manifests ?? [];
  if (!list.length) return section("Referrers", h("p", { class: "muted" }, "Nothing is attached to this version."));
  const items = await Promise.all(list.map(async (d) => {
    const { doc } = await manifest(repo, d.digest).catch(() => ({ doc: {} }));
    const layer = doc.layers?.[0];
    const text = layer && /json|text/.test(layer.mediaType) ? await smallBlob(repo, layer, 64 * 1024) : null;
    const raw = text ? h("pre", { class: "json" }, pretty(text)) : null;
    // A scan report has a section of its own; its JSON is there on demand.
    let body = raw && d.artifactType === SCAN ? h("details", {}, h("summary", {}, "Report"), raw) : raw;
    if (d.artifactType === EVALUATION && text) {
      try {
        const metrics = JSON.parse(text).metrics ?? {};
        body = [table(null, ["Metric", "Value"],
          Object.entries(metrics).map(([k, v]) => [k, number(v)]), { class: "metrics" }),
        h("details", {}, h("summary", {}, "Report"), raw)];
      } catch {
        // shown as text
      }
    }
    const created = d.annotations?.["org.opencontainers.image.created"];
    return h("article", { class: "referrer" },
      h("h3", {}, label(d.artifactType), " ",
        h("a", { href: versionUrl(repo, d.digest) }, h("code", {}, short(d.digest)))),
      h("p", { class: "muted" }, d.artifactType ?? "", created ? ` · ${when(created)}` : ""),
      body);
  }));
  return section("Referrers", items);
}

function label(artifactType) {
  if (artifactType === EVALUATION) return "Evaluation";
  if (artifactType === SCAN) return "Scan report";
  if (/lineage/.test(artifactType ?? "")) return "Lineage";
  if (/signature|sigstore|cosign|notary/.test(artifactType ?? "")) return "Signature";
  if (/sbom|spdx|cyclonedx/.test(artifactType ?? "")) return "SBOM";
  return "Artifact";
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

async function scanReport(repo, digest) {
  const r = await request(`/api/v1/repositories/${repo}/manifests/${digest}/scan`);
  if (r.status === 404) return section("Pickle scan", h("p", { class: "muted" }, "No scan report (not scanned, or nothing to scan)."));
  if (!r.ok) return section("Pickle scan", message("error", (await failure(r)).text));
  const report = await r.json();
  const rows = (report.layers ?? []).flatMap((layer) => (layer.files?.length ? layer.files : [{ path: layer.title ?? "", verdict: layer.verdict }])
    .map((f) => [layer.title ?? short(layer.digest), f.path ?? "", f.format ?? "",
      h("span", { class: `badge verdict-${f.verdict}` }, f.verdict),
      [(f.imports ?? []).map((i) => `${i.module}.${i.name} (${i.class})`).join(", "),
        f.problem ? h("div", { class: "muted" }, f.problem) : null]]));
  return section("Pickle scan",
    h("p", {}, "Verdict: ", h("span", { class: `badge verdict-${report.verdict}` }, report.verdict),
      report.scannedAt ? ` · scanned ${when(report.scannedAt)}` : ""),
    rows.length ? table(null, ["Layer", "File", "Format", "Verdict", "Imports and problems"], rows) : null);
}

/** The evaluations of this repository's newest versions, as charts. */
async function evaluations(repo, digest, listing) {
  const { items: tags } = await listing;
  // A version is named and dated by its first version tag (an environment
  // tag moves, so its time says nothing of when the version was made).
  const byDigest = new Map();
  const better = (t, seen) => !seen || (seen.env && !t.environment)
    || (seen.env === t.environment && t.updated < seen.updated);
  for (const t of tags) {
    if (t.kind === "image" && t.artifactType === null) continue;
    if (better(t, byDigest.get(t.digest))) {
      byDigest.set(t.digest, { label: t.name, updated: t.updated, env: t.environment });
    }
  }
  const newest = [...byDigest.entries()].sort(([, a], [, b]) => (a.updated < b.updated ? 1 : -1));
  byDigest.clear();
  for (const [d, v] of newest) byDigest.set(d, v);
  if (!byDigest.has(digest)) byDigest.set(digest, { label: short(digest), updated: "" });
  const chosen = [...byDigest.entries()].slice(0, CHART_VERSIONS);
  if (!chosen.some(([d]) => d === digest)) chosen.push([digest, byDigest.get(digest)]);
  const measured = [];
  for (let i = 0; i < chosen.length; i += 6) {
    const batch = await Promise.all(chosen.slice(i, i + 6).map(async ([d, v]) => {
      const found = await evaluationOf(repo, d).catch(() => null);
      return found ? { ...v, digest: d, metrics: found.metrics, current: d === digest } : null;
    }));
    measured.push(...batch.filter(Boolean));
  }
  if (!measured.length) return section("Evaluations", h("p", { class: "muted" }, "No evaluations attached to this repository's versions."));
  measured.sort((a, b) => (a.updated < b.updated ? -1 : 1));
  const names = [...new Set(measured.flatMap((v) => Object.keys(v.metrics)))].sort();
  return section("Evaluations",
    h("p", { class: "muted" }, "The newest evaluation of each version, oldest version first; this one is marked."),
    h("div", { class: "charts" }, metricCharts(measured)),
    table(null, ["Version", ...names], measured.map((v) => ({
      attrs: v.current ? { class: "current" } : {},
      cells: [h("a", { href: versionUrl(repo, v.digest) }, v.label), ...names.map((n) => number(v.metrics[n] ?? ""))],
    })), { class: "metrics" }));
}

/** The promote form, for a caller who may promote here. */
async function promote(repo, digest, listing) {
  const { first, items: tags } = await listing;
  if (!first?.may?.promote) return null;
  const environments = tags.filter((t) => t.environment).map((t) => t.name);
  const to = h("input", { name: "to", list: "environments", required: true, value: environments[0] ?? "", autocomplete: "off" });
  const reason = h("input", { name: "reason", placeholder: "why (kept in the history)" });
  const expect = h("output", { class: "muted" });
  const status = h("div", { "aria-live": "polite" });
  let current = null;
  const look = async () => {
    current = null;
    expect.textContent = "";
    if (!to.value) return;
    const r = await request(`/v2/${repo}/manifests/${to.value}`, { method: "HEAD", accept: "*/*" });
    current = r.ok ? r.headers.get("docker-content-digest") : null;
    expect.textContent = current ? `now at ${short(current)}` : "a new tag";
  };
  to.addEventListener("change", () => look().catch(() => {}));
  await look().catch(() => {});
  const form = h("form", {
    class: "promote",
    onsubmit: async (event) => {
      event.preventDefault();
      status.replaceChildren(h("p", { class: "muted" }, "Promoting…"));
      const body = { reference: digest, to: to.value, reason: reason.value || undefined };
      if (current) body.expect = current;
      const r = await request(`/api/v1/repositories/${repo}/promote`, { method: "POST", body });
      if (r.ok) {
        status.replaceChildren(message("ok", `${to.value} now points at ${short(digest)}. `,
          h("a", { href: timelineUrl(repo, to.value) }, "See its timeline")));
        await look().catch(() => {});
        return;
      }
      const { text, error } = await failure(r);
      if (error?.code === "GATE_FAILED") {
        status.replaceChildren(message("error", h("strong", {}, "Refused by the release gates:"),
          h("ul", { class: "unmet" }, (error.detail?.unmet ?? []).map((u) => h("li", {}, u)))));
      } else if (r.status === 412) {
        await look().catch(() => {});
        status.replaceChildren(message("error", `${to.value} moved meanwhile (${expect.textContent}); look again and retry.`));
      } else {
        status.replaceChildren(message("error", text));
      }
    },
  },
  h("datalist", { id: "environments" }, environments.map((e) => h("option", { value: e }))),
  field("Environment tag", to), expect,
  field("Reason", reason),
  h("button", { type: "submit" }, `Promote ${short(digest)}`),
  status);
  return section("Promote", h("p", { class: "muted" },
    "Moves the tag to this version if nobody moved it since this page looked (compare-and-swap), and only if the gates pass."),
  form);
}

