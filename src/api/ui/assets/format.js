// How numbers, sizes, digests and times are written on the pages.

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A digest's algorithm and first 12 hex digits. */
export function short(digest) {
  if (!digest) return "";
  const [alg, hex] = digest.split(":");
  return hex ? `${alg}:${hex.slice(0, 12)}` : digest;
}

/** One formatter for every time on a page (making one per call is slow). */
const LOCAL = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** An RFC 3339 time, written in the reader's time zone. */
export function when(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? iso : LOCAL.format(t);
}

/** "3 minutes ago" and the like. */
export function ago(iso) {
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return "";
  const seconds = Math.round((Date.now() - t) / 1000);
  const steps = [[60, "second"], [60, "minute"], [24, "hour"], [30, "day"], [12, "month"]];
  let value = seconds;
  for (const [size, name] of steps) {
    if (Math.abs(value) < size) return plural(value, name);
    value = Math.round(value / size);
  }
  return plural(value, "year");
}

function plural(value, name) {
  const n = Math.max(0, value);
  return `${n} ${name}${n === 1 ? "" : "s"} ago`;
}

/** A number with up to four significant decimals. */
export function number(x) {
  if (typeof x !== "number") return String(x ?? "");
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(4)));
}
