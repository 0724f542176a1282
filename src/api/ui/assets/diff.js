// The release notes between two versions, as the API computes them.

import { json } from "./api.js";
import { h, table, section, field, facts } from "./dom.js";
import { bytes, short, number } from "./format.js";
import { repoUrl, versionUrl } from "./repositories.js";
import { go } from "./nav.js";

export async function diff(main, [repo], query) {
  const from = h("input", { name: "from", value: query.get("from") ?? "", required: true, placeholder: "tag or digest" });
  const to = h("input", { name: "to", value: query.get("to") ?? "", required: true, placeholder: "tag or digest" });
  const form = h("form", { class: "filters" }, field("From", from), field("To", to),
    h("button", { type: "submit" }, "Compare"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go(`/ui/r/${repo}/-/diff?${new URLSearchParams({ from: from.value, to: to.value })}`);
  });
  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "/ui/" }, "Repositories"), " / ", h("a", { href: repoUrl(repo) }, repo), " / "),
    h("h1", {}, `Changes in ${repo}`),
    form,
  );
  if (!from.value || !to.value) return;
  const notes = await json(`/api/v1/repositories/${repo}/diff?${new URLSearchParams({ from: from.value, to: to.value })}`);
  const link = (d) => h("a", { href: versionUrl(repo, d) }, h("code", { title: d }, short(d)));
  const layerRows = (list, sign) => list.map((l) => [sign, l.mediaType, bytes(l.size), h("code", { title: l.digest }, short(l.digest))]);
  const ann = notes.annotations ?? {};
  const annRows = [
    ...Object.entries(ann.added ?? {}).map(([k, v]) => ["added", h("code", {}, k), "", v]),
    ...Object.entries(ann.removed ?? {}).map(([k, v]) => ["removed", h("code", {}, k), v, ""]),
    ...Object.entries(ann.changed ?? {}).map(([k, v]) => ["changed", h("code", {}, k), v.from, v.to]),
  ];
  const lineage = notes.lineage ?? {};
  const lin = (what, d) => [
    ...(d?.added ?? []).map((x) => [what, "added", link(x)]),
    ...(d?.removed ?? []).map((x) => [what, "removed", link(x)]),
  ];
  const linRows = [...lin("dataset", lineage.datasets), ...lin("parent", lineage.parents)];
  if (lineage.commit) linRows.push(["commit", "changed", `${lineage.commit.from ?? "none"} → ${lineage.commit.to ?? "none"}`]);
  const metrics = Object.entries(notes.metrics ?? {});
  main.append(
    facts([["From", link(notes.from)], ["To", link(notes.to)]]),
    section("Layers",
      h("p", {}, `${bytes(notes.layers.bytesAdded)} added, ${bytes(notes.layers.bytesRemoved)} removed.`),
      table(null, ["", "Media type", "Size", "Digest"],
        [...layerRows(notes.layers.added, "added"), ...layerRows(notes.layers.removed, "removed")])),
    section("Metrics", metrics.length
      ? table(null, ["Metric", "From", "To", "Change"], metrics.map(([k, m]) => [k, number(m.from), number(m.to),
        m.delta > 0 ? `▲ +${number(m.delta)}` : m.delta < 0 ? `▼ ${number(m.delta)}` : "0"]))
      : h("p", { class: "muted" }, "No evaluation on both versions.")),
    section("Lineage", linRows.length ? table(null, ["What", "", "Which"], linRows) : h("p", { class: "muted" }, "No change.")),
    section("Annotations", annRows.length ? table(null, ["", "Key", "From", "To"], annRows) : h("p", { class: "muted" }, "No change.")),
  );
}
