// Building the page's elements: text goes in as text (never as markup), so
// nothing a pusher wrote (a tag, an annotation, a reason) can run as code.

const SVG = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "text") {
      el.textContent = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children: nodes, strings (as text), arrays of them; skips null. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("a", { href: "/ui/" }, "Home"). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

/** A table: headings, then rows of cells (each a node, text or array). */
export function table(caption, headings, rows, attrs = {}) {
  const body = document.createElement("tbody");
  const fragment = document.createDocumentFragment();
  for (const row of rows) {
    fragment.append(h("tr", row.attrs ?? {}, (row.cells ?? row).map((c) => h("td", {}, c))));
  }
  body.append(fragment);
  return h("div", { class: "scroll" },
    h("table", attrs,
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
      body));
}

/** A section with a heading. */
export function section(title, ...children) {
  const id = "s-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), children);
}

/** A definition list from [term, value] pairs (pairs with no value left out). */
export function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** A message box: kind is "error", "ok" or "note". */
export function message(kind, ...children) {
  return h("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" },
    children);
}

/** A labelled form field. */
export function field(label, input) {
  const id = input.id || "f-" + Math.random().toString(36).slice(2, 9);
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

/** A command shown with a button that copies it. */
export function copyable(label, command) {
  const code = h("code", {}, command);
  const done = h("span", { class: "muted", "aria-live": "polite" });
  const button = h("button", {
    type: "button",
    class: "small",
    "aria-label": `Copy the ${label} command`,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(command);
        done.textContent = "copied";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(code);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        done.textContent = "selected: press Ctrl+C";
      }
    },
  }, "Copy");
  return h("div", { class: "command" }, h("span", { class: "label" }, label), code, button, done);
}
