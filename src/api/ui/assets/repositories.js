// The list of repositories, and one repository's tags.

import { all, next, request, failure, Failed } from "./api.js";
import { go } from "./nav.js";
import { h, table, message, field } from "./dom.js";
import { bytes, short, when, ago } from "./format.js";

const KINDS = ["image", "model", "dataset"];
/** Tag rows drawn at once. */
const TAG_PAGE = 250;

export const repoUrl = (repo) => `/ui/r/${repo}`;
export const versionUrl = (repo, reference) => `/ui/r/${repo}/-/v/${reference}`;
export const timelineUrl = (repo, tag) => `/ui/r/${repo}/-/timeline/${tag}`;
export const lineageUrl = (repo, reference) => `/ui/r/${repo}/-/lineage/${reference}`;

export function kindBadge(kind) {
  return kind ? h("span", { class: `badge kind-${kind}` }, kind) : "";
}

export function time(iso) {
  return iso ? h("time", { datetime: iso, title: when(iso) }, ago(iso)) : "";
}

export async function repositories(main, _params, query) {
  const q = query.get("q") ?? "";
  const kind = query.get("kind") ?? "";
  const search = h("input", { type: "search", name: "q", value: q, placeholder: "part of a name" });
  const kinds = h("select", { name: "kind" },
    h("option", { value: "" }, "any kind"),
    KINDS.map((k) => h("option", { value: k, selected: k === kind }, k)));
  const form = h("form", { class: "filters", role: "search", action: "/ui/" },
    field("Name", search), field("Kind", kinds), h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (search.value) params.set("q", search.value);
    if (kinds.value) params.set("kind", kinds.value);
    const qs = params.toString();
    go(`/ui/${qs ? "?" + qs : ""}`);
  });
  main.append(h("h1", {}, "Repositories"), form);

  const list = h("div", {});
  main.append(list);
  let url = `/api/v1/repositories?n=200${q ? "&q=" + encodeURIComponent(q) : ""}`;
  let shown = 0;
  const more = h("button", { type: "button" }, "More");
  const load = async () => {
    const r = await request(url);
    if (!r.ok) throw new Failed((await failure(r)).text, r.status);
    const page = (await r.json()).repositories.filter((repo) => !kind || repo.kind === kind);
    shown += page.length;
    list.append(table(null, ["Name", "Kind", "Tags", "Versions", "Size", "Last push"],
      page.map((repo) => [
        h("a", { href: repoUrl(repo.name) }, repo.name),
        kindBadge(repo.kind),
        String(repo.tags),
        String(repo.manifests),
        bytes(repo.size),
        time(repo.lastPush),
      ]), { class: "repositories" }));
    url = next(r);
    if (url) list.append(more);
    else more.remove();
  };
  more.addEventListener("click", () => load().catch((e) => list.append(message("error", e.message))));
  await load();
  if (shown === 0) {
    list.replaceChildren(message("note", q || kind
      ? "No repository you may pull matches."
      : "No repositories you may pull yet. Push one: docker push, oras push or skopeo copy."));
  }
}

export async function repository(main, [repo]) {
  const { first, items: tags } = await all(`/api/v1/repositories/${repo}/tags?n=1000`, "tags");
  const may = first?.may ?? {};
  const kinds = new Set(tags.map((t) => t.kind));
  const environments = tags.filter((t) => t.environment);
  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "/ui/" }, "Repositories"), " / "),
    h("h1", {}, repo, " ", [...kinds].map(kindBadge)),
  );
  if (environments.length) {
    main.append(h("p", { class: "environments" }, "Environments: ",
      environments.map((t) => [
        h("a", { class: "badge env", href: timelineUrl(repo, t.name) }, t.name), " ",
        h("a", { href: versionUrl(repo, t.digest) }, h("code", {}, short(t.digest))), " ",
      ])));
  }
  if (!tags.length) {
    main.append(message("note", "No tags here."));
    return;
  }
  const filter = h("input", { type: "search", placeholder: "part of a tag" });
  const from = h("select", { name: "from" }, tags.map((t) => h("option", { value: t.name }, t.name)));
  const to = h("select", { name: "to" }, tags.map((t) => h("option", { value: t.name }, t.name)));
  if (tags.length > 1) to.selectedIndex = 1;
  const compare = h("form", { class: "filters", action: `/ui/r/${repo}/-/diff` },
    field("Compare", from), field("with", to), h("button", { type: "submit" }, "Show the changes"));
  compare.addEventListener("submit", (event) => {
    event.preventDefault();
    const qs = new URLSearchParams({ from: from.value, to: to.value });
    go(`/ui/r/${repo}/-/diff?${qs}`);
  });
  const row = (t) => ({
    attrs: { "data-tag": t.name },
    cells: [
      [h("a", { href: versionUrl(repo, t.name) }, t.name),
        t.environment ? [" ", h("a", { class: "badge env", href: timelineUrl(repo, t.name), title: "release timeline" }, "environment")] : null],
      h("a", { href: versionUrl(repo, t.digest) }, h("code", { title: t.digest }, short(t.digest))),
      [kindBadge(t.kind), t.artifactType ? h("div", { class: "muted small" }, t.artifactType) : null],
      bytes(t.size),
      time(t.updated),
      t.by ?? "",
    ],
  });
  // Rows are drawn a page at a time: laying out thousands of table rows
  // costs the browser seconds, and nobody reads them all; the filter
  // searches every tag.
  const listing = h("div", { class: "listing" });
  const shown = h("p", { class: "muted", "aria-live": "polite" });
  let matches = tags;
  let limit = TAG_PAGE;
  const draw = () => {
    const rows = matches.slice(0, limit).map(row);
    listing.replaceChildren(table(null, ["Tag", "Digest", "Kind", "Size", "Updated", "By"], rows, { class: "tags" }));
    const all = `${tags.length} tag${tags.length === 1 ? "" : "s"}`;
    shown.textContent = matches === tags
      ? `Showing ${rows.length} of ${all}.`
      : `${matches.length} of ${all} match; showing ${rows.length}.`;
    if (rows.length < matches.length) {
      listing.append(h("button", {
        type: "button",
        class: "more",
        onclick: () => {
          limit += TAG_PAGE;
          draw();
        },
      }, `Show ${Math.min(TAG_PAGE, matches.length - rows.length)} more`));
    }
  };
  filter.addEventListener("input", () => {
    const part = filter.value.trim();
    matches = part ? tags.filter((t) => t.name.includes(part)) : tags;
    limit = TAG_PAGE;
    draw();
  });
  draw();
  main.append(
    h("p", { class: "muted" }, may.promote
      ? "You may promote and roll back here."
      : "You may look here; promoting needs the promote right."),
    compare,
    h("div", { class: "filters" }, field("Filter tags", filter)),
    shown,
    listing,
  );
}
