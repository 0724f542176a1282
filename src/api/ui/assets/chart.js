// A metric across versions as a small SVG line chart: one chart per metric,
// since metrics have scales of their own (an AUC near 1, a loss near 0).

import { h, s } from "./dom.js";
import { number } from "./format.js";

const W = 480;
const H = 180;
const PAD = { left: 48, right: 16, top: 16, bottom: 40 };

/**
 * versions: [{ label, metrics: { name: value }, current }], oldest first.
 * Returns a figure per metric any version has.
 */
export function metricCharts(versions) {
  const names = [...new Set(versions.flatMap((v) => Object.keys(v.metrics)))].sort();
  return names.map((name) => chart(name, versions.filter((v) => typeof v.metrics[name] === "number")));
}

function chart(name, versions) {
  const values = versions.map((v) => v.metrics[name]);
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    lo -= Math.abs(lo) * 0.1 || 1;
    hi += Math.abs(hi) * 0.1 || 1;
  }
  const x = (i) => PAD.left + (versions.length === 1 ? (W - PAD.left - PAD.right) / 2
    : (i * (W - PAD.left - PAD.right)) / (versions.length - 1));
  const y = (v) => PAD.top + ((hi - v) * (H - PAD.top - PAD.bottom)) / (hi - lo);
  const points = versions.map((v, i) => `${x(i).toFixed(1)},${y(v.metrics[name]).toFixed(1)}`);
  const label = `${name} across ${versions.length} version${versions.length === 1 ? "" : "s"}: `
    + versions.map((v) => `${v.label} ${number(v.metrics[name])}`).join(", ");
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": label,
  },
  s("line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom, class: "axis" }),
  s("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom, class: "axis" }),
  [hi, (hi + lo) / 2, lo].map((v) => s("text", { x: PAD.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, number(v))),
  s("polyline", { points: points.join(" "), class: "line" }),
  versions.map((v, i) => [
    s("circle", { cx: x(i), cy: y(v.metrics[name]), r: v.current ? 6 : 4, class: v.current ? "point current" : "point" },
      s("title", {}, `${v.label}: ${number(v.metrics[name])}`)),
    s("text", { x: x(i), y: H - PAD.bottom + 16, class: "tick", "text-anchor": "middle" }, v.label.slice(0, 12)),
  ]));
  return h("figure", { class: "metric" }, h("figcaption", {}, name), svg);
}
