// A tag's release timeline: every move (who, when, why, from which digest to
// which), the promotions gates refused, rollbacks (automatic ones marked),
// what the tag pointed at a chosen time, and rolling back.

import { json, request, failure, next } from "./api.js";
import { h, message, field, section } from "./dom.js";
import { short, when, ago } from "./format.js";
import { repoUrl, versionUrl } from "./repositories.js";
import { go } from "./nav.js";

function digestLink(repo, digest) {
  return digest ? h("a", { href: versionUrl(repo, digest) }, h("code", { title: digest }, short(digest)))
    : h("span", { class: "muted" }, "nothing");
}

/** Automatic rollbacks are made by Berth itself and say so. */
const automatic = (entry) => entry.actor === "berth" && /^automatic/.test(entry.reason ?? "");

export async function timeline(main, [repo, tag], query) {
  const first = await request(`/api/v1/repositories/${repo}/tags/${tag}/history?n=100`);
  if (!first.ok) {
    const { text } = await failure(first);
    throw Object.assign(new Error(text), { status: first.status });
  }
  const page = await first.json();
  const tags = await json(`/api/v1/repositories/${repo}/tags?n=1`);
  const may = tags.may ?? {};
  const current = page.history[0]?.to ?? null;

  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "/ui/" }, "Repositories"), " / ", h("a", { href: repoUrl(repo) }, repo), " / "),
    h("h1", {}, `Timeline of ${repo}:${tag}`),
    h("p", {}, `${tag} points at `, digestLink(repo, current)),
  );
  main.append(await pointInTime(repo, tag, query.get("at")));
  if (may.promote && current) main.append(rollbackForm(repo, tag, null));

  const entries = [
    ...page.history.map((e) => ({ ...e, kind: "move" })),
    ...(page.refused ?? []).map((e) => ({ ...e, kind: "refused" })),
  ].sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : b.id - a.id));
  const list = h("ol", { class: "timeline", reversed: true });
  const add = (items) => list.append(...items.map((e) => entry(repo, tag, e, current, may)));
  add(entries);
  let more = next(first);
  const button = h("button", { type: "button" }, "Older moves");
  button.addEventListener("click", async () => {
    const r = await request(more);
    const older = await r.json();
    add(older.history.map((e) => ({ ...e, kind: "move" })));
    more = next(r);
    if (!more) button.remove();
  });
  main.append(section("Moves and refusals", list, more ? button : null));
}

function entry(repo, tag, e, current, may) {
  if (e.kind === "refused") {
    return h("li", { class: "event refused", "data-operation": "refused" },
      h("div", { class: "when" }, h("time", { datetime: e.at, title: when(e.at) }, when(e.at)), " · ", ago(e.at)),
      h("div", {}, h("span", { class: "badge refused" }, "refused"), " promotion of ", digestLink(repo, e.digest),
        " by ", h("strong", {}, e.actor ?? "anonymous")),
      h("div", { class: "reason" }, "Unmet: ", e.reason));
  }
  const auto = automatic(e);
  return h("li", { class: `event op-${e.operation}${auto ? " automatic" : ""}`, "data-operation": e.operation },
    h("div", { class: "when" }, h("time", { datetime: e.at, title: when(e.at) }, when(e.at)), " · ", ago(e.at)),
    h("div", {},
      h("span", { class: `badge op-${e.operation}` }, e.operation),
      auto ? [" ", h("span", { class: "badge automatic" }, "automatic")] : null,
      " ", digestLink(repo, e.from), " → ", digestLink(repo, e.to),
      " by ", h("strong", {}, e.actor ?? "anonymous")),
    e.reason ? h("div", { class: "reason" }, e.reason) : null,
    may.promote && e.to && e.to !== current ? rollbackForm(repo, tag, e.to) : null);
}

function rollbackForm(repo, tag, to) {
  const reason = h("input", { name: "reason", placeholder: "why (kept in the history)" });
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", {
    class: to ? "rollback inline" : "rollback",
    onsubmit: async (event) => {
      event.preventDefault();
      const body = { tag, reason: reason.value || undefined };
      if (to) body.to = to;
      const r = await request(`/api/v1/repositories/${repo}/rollback`, { method: "POST", body });
      if (r.ok) {
        go(location.pathname + location.search, { replace: true });
      } else {
        status.replaceChildren(message("error", (await failure(r)).text));
      }
    },
  },
  field(to ? `Reason to roll back to ${short(to)}` : "Reason", reason),
  h("button", { type: "submit" }, to ? `Roll back to ${short(to)}` : `Roll ${tag} back to its previous version`),
  status);
  return to ? h("details", {}, h("summary", {}, "Roll back to this"), form) : section("Roll back", form);
}

async function pointInTime(repo, tag, at) {
  const input = h("input", { type: "datetime-local", name: "at", step: 1 });
  if (at) {
    const t = new Date(at);
    if (!Number.isNaN(t.getTime())) {
      input.value = new Date(t.getTime() - t.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
    }
  }
  const form = h("form", { class: "filters" }, field(`What was ${tag} at`, input),
    h("button", { type: "submit" }, "Look"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.value) return;
    const iso = new Date(input.value).toISOString();
    go(`/ui/r/${repo}/-/timeline/${tag}?at=${encodeURIComponent(iso)}`);
  });
  let answer = null;
  if (at) {
    const r = await request(`/api/v1/repositories/${repo}/tags/${tag}/history?at=${encodeURIComponent(at)}`);
    if (r.ok) {
      const then = await r.json();
      answer = message("note", `At ${when(at)}, ${tag} pointed at `, digestLink(repo, then.digest),
        then.since ? ` (since ${when(then.since.at)}, ${then.since.operation} by ${then.since.actor ?? "anonymous"})` : "");
    } else if (r.status === 404) {
      answer = message("note", `At ${when(at)}, ${tag} did not exist yet.`);
    } else {
      answer = message("error", (await failure(r)).text);
    }
  }
  return section("Point in time", form, answer);
}
