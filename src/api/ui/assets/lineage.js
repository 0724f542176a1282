// The lineage graph around a version, drawn as layers from inputs (left) to
// what was built from them (right): datasets, code, parent models. Every
// node links to its page (a version) or its source (a commit, a URI).

import { json } from "./api.js";
import { h, s, table, section, field } from "./dom.js";
import { short, when } from "./format.js";
import { repoUrl, versionUrl } from "./repositories.js";
import { go } from "./nav.js";

const NODE_W = 210;
const NODE_H = 46;
const GAP_X = 90;
const GAP_Y = 18;
const MARGIN = 16;

export async function lineage(main, [repo, reference], query) {
  const direction = ["upstream", "downstream", "both"].includes(query.get("direction"))
    ? query.get("direction") : "both";
  const depth = Math.min(32, Math.max(1, Number.parseInt(query.get("depth") ?? "3", 10) || 3));
  const graph = await json(`/api/v1/lineage/${repo}/${reference}?direction=${direction}&depth=${depth}`);

  const directions = h("select", { name: "direction" },
    ["upstream", "downstream", "both"].map((d) => h("option", { value: d, selected: d === direction }, d)));
  const depths = h("input", { name: "depth", type: "number", min: 1, max: 32, value: depth });
  const form = h("form", { class: "filters" }, field("Direction", directions), field("Depth", depths),
    h("button", { type: "submit" }, "Draw"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const qs = new URLSearchParams({ direction: directions.value, depth: depths.value });
    go(`/ui/r/${repo}/-/lineage/${reference}?${qs}`);
  });

  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "/ui/" }, "Repositories"), " / ", h("a", { href: repoUrl(repo) }, repo), " / ",
      h("a", { href: versionUrl(repo, reference) }, reference.startsWith("sha256:") ? short(reference) : reference), " / "),
    h("h1", {}, `Lineage of ${repo}:${reference.startsWith("sha256:") ? short(reference) : reference}`),
    form,
    h("p", { class: "muted" }, `${graph.nodes.length} node${graph.nodes.length === 1 ? "" : "s"}, `
      + `${graph.edges.length} edge${graph.edges.length === 1 ? "" : "s"}; inputs on the left, what was built from them on the right.`),
    h("div", { class: "graph", tabindex: "0", "aria-label": "Lineage graph (scrolls)" }, draw(graph)),
    section("Nodes", table(null, ["Kind", "Node", "Digest", "Created"],
      graph.nodes.map((n) => ({
        attrs: { "data-node": n.id },
        cells: [n.kind, link(n) ? h("a", { href: link(n) }, name(n)) : name(n),
          n.digest ? h("code", { title: n.digest }, short(n.digest)) : "", when(n.created)],
      })))),
  );
}

/** A node's name as people say it: repository:tag, a commit, a URI. */
function name(n) {
  if (n.repository) return `${n.repository}${n.tags?.length ? ":" + n.tags.join(", ") : "@" + short(n.digest)}`;
  if (n.kind === "code") return `commit ${n.name ?? n.id.replace(/^commit:/, "")}`;
  return n.name ?? n.uri ?? short(n.digest) ?? n.id;
}

/** Where a node leads: its version page, or the commit at its source. */
function link(n) {
  if (n.repository && n.digest && n.present !== false) return versionUrl(n.repository, n.digest);
  const web = n.uri && /^https?:\/\//.test(n.uri) ? n.uri.replace(/\.git$/, "").replace(/\/$/, "") : null;
  if (n.kind === "code" && web) return `${web}/commit/${n.name ?? n.id.replace(/^commit:/, "")}`;
  return web;
}

/** Columns by longest path from the inputs; rows ordered to cross less. */
export function layout(graph) {
  const ids = graph.nodes.map((n) => n.id);
  const known = new Set(ids);
  const edges = graph.edges.filter((e) => known.has(e.from) && known.has(e.to) && e.from !== e.to);
  const ins = new Map(ids.map((id) => [id, []]));
  const outs = new Map(ids.map((id) => [id, []]));
  for (const e of edges) {
    outs.get(e.from).push(e.to);
    ins.get(e.to).push(e.from);
  }
  const column = new Map();
  const waiting = new Map(ids.map((id) => [id, ins.get(id).length]));
  let ready = ids.filter((id) => waiting.get(id) === 0);
  for (const id of ready) column.set(id, 0);
  while (ready.length) {
    const after = [];
    for (const id of ready) {
      for (const to of outs.get(id)) {
        column.set(to, Math.max(column.get(to) ?? 0, column.get(id) + 1));
        waiting.set(to, waiting.get(to) - 1);
        if (waiting.get(to) === 0) after.push(to);
      }
    }
    ready = after;
  }
  // A cycle (lineage should have none): what is left goes after the rest.
  const last = Math.max(0, ...column.values());
  for (const id of ids) if (!column.has(id)) column.set(id, last + 1);
  // An input sits just before the first thing made from it, not at the far
  // left: short edges. Latest columns first, so a chain moves as a whole.
  for (const id of [...ids].sort((a, b) => column.get(b) - column.get(a))) {
    const after = outs.get(id).map((to) => column.get(to)).filter((c) => c > column.get(id));
    if (after.length && after.length === outs.get(id).length) column.set(id, Math.min(...after) - 1);
  }

  const columns = [];
  for (const id of ids) (columns[column.get(id)] ??= []).push(id);
  const order = new Map();
  const place = () => columns.forEach((c) => c.forEach((id, i) => order.set(id, i)));
  place();
  const mean = (list) => list.length ? list.reduce((a, id) => a + order.get(id), 0) / list.length : null;
  for (let sweep = 0; sweep < 4; sweep++) {
    const range = sweep % 2 === 0 ? columns.keys() : [...columns.keys()].reverse();
    for (const c of range) {
      const col = columns[c] ?? [];
      const key = new Map(col.map((id) => [id, mean(sweep % 2 === 0 ? ins.get(id) : outs.get(id)) ?? order.get(id)]));
      col.sort((a, b) => key.get(a) - key.get(b));
      col.forEach((id, i) => order.set(id, i));
    }
  }
  const tallest = Math.max(1, ...columns.map((c) => c?.length ?? 0));
  const height = tallest * (NODE_H + GAP_Y) - GAP_Y;
  const at = new Map();
  columns.forEach((col, c) => {
    const offset = (height - (col.length * (NODE_H + GAP_Y) - GAP_Y)) / 2;
    col.forEach((id, i) => at.set(id, {
      x: MARGIN + c * (NODE_W + GAP_X),
      y: MARGIN + offset + i * (NODE_H + GAP_Y),
    }));
  });
  return {
    at,
    edges,
    width: MARGIN * 2 + columns.length * (NODE_W + GAP_X) - GAP_X,
    height: MARGIN * 2 + height,
  };
}

function draw(graph) {
  const { at, edges, width, height } = layout(graph);
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const svg = s("svg", {
    class: "lineage", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "group", "aria-label": `${graph.nodes.length} nodes`,
  },
  s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))));
  const lines = s("g", { class: "edges" });
  for (const e of edges) {
    const a = at.get(e.from);
    const b = at.get(e.to);
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x;
    const y2 = b.y + NODE_H / 2;
    const bend = Math.max(30, (x2 - x1) / 2);
    lines.append(s("path", {
      d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
      class: `edge rel-${e.relation}`, "marker-end": "url(#arrow)",
    }, s("title", {}, `${name(byId.get(e.from))} → ${name(byId.get(e.to))} (${e.relation})`)));
    lines.append(s("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, class: "relation", "text-anchor": "middle" }, e.relation));
  }
  svg.append(lines);
  const nodes = s("g", { class: "nodes" });
  for (const n of graph.nodes) {
    const { x, y } = at.get(n.id);
    const target = link(n);
    const title = name(n);
    const box = [
      s("rect", { x, y, width: NODE_W, height: NODE_H, rx: 6, class: `node kind-${n.kind}${n.id === graph.root ? " root" : ""}${n.present === false ? " gone" : ""}` }),
      s("text", { x: x + 10, y: y + 17, class: "node-kind" }, n.present === false ? `${n.kind} (deleted)` : n.kind),
      s("text", { x: x + 10, y: y + 35, class: "node-name" }, clip(title, 30)),
      s("title", {}, `${n.kind}: ${title}${n.digest ? "\n" + n.digest : ""}`),
    ];
    const attrs = { class: "node-link", "data-node": n.id, "data-kind": n.kind };
    if (target) {
      const external = !target.startsWith("/ui/");
      nodes.append(s("a", { ...attrs, href: target, target: external ? "_blank" : null, rel: external ? "noopener noreferrer" : null, "aria-label": `${n.kind} ${title}` }, box));
    } else {
      nodes.append(s("g", attrs, box));
    }
  }
  svg.append(nodes);
  return svg;
}

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}
