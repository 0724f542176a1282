// Talking to Berth: the caller's Basic credentials (kept for this browser
// tab only, in sessionStorage), and the headers every request carries.

const KEY = "berth.credentials";

export class Unauthorized extends Error {}

/** Who is signed in, or null. */
export function user() {
  const saved = sessionStorage.getItem(KEY);
  if (!saved) return null;
  try {
    return atob(saved).split(":")[0];
  } catch {
    return null;
  }
}

function encode(name, password) {
  const bytes = new TextEncoder().encode(`${name}:${password}`);
  return btoa(String.fromCharCode(...bytes));
}

/** Checks the credentials and keeps them if they work. */
export async function signIn(name, password) {
  const token = encode(name, password);
  const r = await fetch("/api/v1/session", {
    headers: { authorization: `Basic ${token}`, "x-requested-with": "XMLHttpRequest" },
  });
  if (r.status === 401) return false;
  if (!r.ok) throw new Error(`the registry answered ${r.status}`);
  sessionStorage.setItem(KEY, token);
  return true;
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

/**
 * What the registry says of an anonymous caller: { authentication,
 * anonymousPull } (/v2/ challenges anonymous callers even when they may
 * pull, so it cannot tell).
 */
export async function anonymousSession() {
  const r = await fetch("/api/v1/session", { headers: { "x-requested-with": "XMLHttpRequest" } });
  if (!r.ok) throw new Error(`the registry answered ${r.status}`);
  return r.json();
}

/**
 * A request with the caller's credentials. A 401 throws Unauthorized (the
 * app then shows the sign-in page); other statuses are the caller's to read.
 */
export async function request(path, { method = "GET", body, accept, type } = {}) {
  const headers = { "x-requested-with": "XMLHttpRequest" };
  const saved = sessionStorage.getItem(KEY);
  if (saved) headers.authorization = `Basic ${saved}`;
  if (accept) headers.accept = accept;
  if (body !== undefined) headers["content-type"] = type ?? "application/json";
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined || typeof body === "string" ? body : JSON.stringify(body),
  });
  if (r.status === 401) throw new Unauthorized(path);
  return r;
}

/** The message of an OCI error answer (and the error itself, if any). */
export async function failure(r) {
  let error = null;
  try {
    error = (await r.clone().json()).errors?.[0] ?? null;
  } catch {
    // not JSON
  }
  const text = error ? `${error.code}: ${error.message}` : `${r.status} ${r.statusText}`;
  return { text, error, status: r.status };
}

export class Failed extends Error {
  constructor(what, status) {
    super(what);
    this.status = status;
  }
}

/** GETs JSON, failing on any status but 200. */
export async function json(path, options) {
  const r = await request(path, options);
  if (!r.ok) {
    const { text } = await failure(r);
    throw new Failed(text, r.status);
  }
  return r.json();
}

/** The `rel="next"` target of a Link header, if any. */
export function next(r) {
  const link = r.headers.get("link");
  const m = link && link.match(/<([^>]+)>\s*;\s*rel="?next"?/);
  return m ? m[1] : null;
}

/** Every page of a listing: `key` is the array each page holds. */
export async function all(path, key, limit = 100000) {
  const items = [];
  let first = null;
  let url = path;
  while (url && items.length < limit) {
    const r = await request(url);
    if (!r.ok) {
      const { text } = await failure(r);
      throw new Failed(text, r.status);
    }
    const page = await r.json();
    first ??= page;
    items.push(...(page[key] ?? []));
    url = next(r);
  }
  return { first, items };
}

export const MANIFEST_TYPES = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

/** A manifest by tag or digest: its document, digest and size. */
export async function manifest(repo, reference) {
  const r = await request(`/v2/${repo}/manifests/${reference}`, { accept: MANIFEST_TYPES });
  if (!r.ok) {
    const { text } = await failure(r);
    throw new Failed(text, r.status);
  }
  const raw = await r.text();
  return {
    doc: JSON.parse(raw),
    digest: r.headers.get("docker-content-digest"),
    size: raw.length,
  };
}

/** A small blob as text, or null when it is larger than `limit` bytes. */
export async function smallBlob(repo, descriptor, limit = 256 * 1024) {
  if (!descriptor || descriptor.size > limit) return null;
  const r = await request(`/v2/${repo}/blobs/${descriptor.digest}`);
  return r.ok ? r.text() : null;
}
