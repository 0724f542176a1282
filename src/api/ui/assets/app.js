// The web UI's shell: routes /ui/... paths to pages, keeps the header's
// "signed in as", and sends a page that gets a 401 to the sign-in form.

import { Unauthorized, Failed, anonymousSession, signIn, signOut, user } from "./api.js";
import { append, h, field, message } from "./dom.js";
import { repositories, repository } from "./repositories.js";
import { version } from "./version.js";
import { lineage } from "./lineage.js";
import { timeline } from "./timeline.js";
import { diff } from "./diff.js";
import { go, onNavigate } from "./nav.js";

/** Path patterns and their pages; a repository name may hold slashes, and
 * "/-/" (never a name component) separates it from what follows. */
const ROUTES = [
  [/^\/ui\/?$/, repositories],
  [/^\/ui\/sign-in$/, signInPage],
  [/^\/ui\/r\/(.+?)\/-\/v\/(.+)$/, version],
  [/^\/ui\/r\/(.+?)\/-\/lineage\/(.+)$/, lineage],
  [/^\/ui\/r\/(.+?)\/-\/timeline\/(.+)$/, timeline],
  [/^\/ui\/r\/(.+?)\/-\/diff$/, diff],
  [/^\/ui\/r\/(.+)$/, repository],
];

let rendering = 0;

/** What an anonymous caller may do (asked once per page load). */
let anonymous = null;
function anonymously() {
  anonymous ??= anonymousSession().catch(() => ({ authentication: true, anonymousPull: false }));
  return anonymous;
}

async function anonymousAllowed() {
  const session = await anonymously();
  return !session.authentication || session.anonymousPull;
}

async function render() {
  const mine = ++rendering;
  const main = document.getElementById("main");
  const path = location.pathname;
  const query = new URLSearchParams(location.search);
  showWho();
  if (!user() && path !== "/ui/sign-in" && !(await anonymousAllowed())) {
    go(`/ui/sign-in?next=${encodeURIComponent(path + location.search)}`, { replace: true });
    return;
  }
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  const content = h("div", { class: "page" });
  try {
    if (!route) throw new Failed(`no page at ${path}`, 404);
    const [pattern, page] = route;
    const params = path.match(pattern).slice(1).map(decodeURIComponent);
    await page(content, params, query);
  } catch (e) {
    if (mine !== rendering) return;
    if (e instanceof Unauthorized) {
      const back = path + location.search;
      go(`/ui/sign-in?next=${encodeURIComponent(back)}`, { replace: true });
      return;
    }
    content.replaceChildren(
      h("h1", { tabindex: "-1" }, e.status === 404 || e.status === 403 ? "Not found" : "Error"),
      message("error", e.status === 403 || e.status === 404
        ? "There is nothing here that you may see. Sign in as someone who may pull it, or check the name."
        : String(e.message ?? e)),
    );
  }
  if (mine !== rendering) return;
  main.replaceChildren(content);
  const title = content.querySelector("h1");
  document.title = title ? `${title.textContent} · Berth` : "Berth";
  if (title) {
    title.setAttribute("tabindex", "-1");
    title.focus({ preventScroll: true });
  }
}

function showWho() {
  const who = document.getElementById("who");
  const name = user();
  who.replaceChildren(name
    ? h("span", {}, "Signed in as ", h("strong", {}, name), " ",
      h("button", {
        type: "button",
        class: "small",
        onclick: () => {
          signOut();
          go("/ui/sign-in");
        },
      }, "Sign out"))
    : h("a", { href: "/ui/sign-in" }, "Sign in"));
}

async function signInPage(main, _params, query) {
  const target = query.get("next") || "/ui/";
  const safe = target.startsWith("/ui/") ? target : "/ui/";
  const name = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", {
    name: "password", type: "password", autocomplete: "current-password", required: true,
  });
  const status = h("div", { "aria-live": "assertive" });
  const form = h("form", {
    class: "signin",
    onsubmit: async (event) => {
      event.preventDefault();
      status.replaceChildren();
      try {
        if (await signIn(name.value, password.value)) go(safe, { replace: true });
        else status.replaceChildren(message("error", "Wrong user name or password."));
      } catch (e) {
        status.replaceChildren(message("error", String(e.message ?? e)));
      }
    },
  },
  field("User name", name),
  field("Password", password),
  h("button", { type: "submit" }, "Sign in"),
  status);
  const session = await anonymously();
  append(main, [
    h("h1", {}, "Sign in"),
    !session.authentication ? message("note", "This registry asks nobody to sign in.")
      : session.anonymousPull ? message("note", "Anyone may look here without signing in; sign in to push or promote.") : null,
    h("p", { class: "muted" }, "Your user name and password for this registry (the ones docker login takes). They are kept in this tab only."),
    form,
  ]);
}

// Links within the UI change the page without reloading it.
document.addEventListener("click", (event) => {
  const a = event.target.closest?.("a[href]");
  if (!a || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (a.getAttribute("target") || a.hasAttribute("download")) return;
  // SVG links too (their href is no string property).
  const url = new URL(a.getAttribute("href"), location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/ui/")) return;
  event.preventDefault();
  go(url.pathname + url.search);
});
onNavigate(render);
addEventListener("popstate", render);
render();
