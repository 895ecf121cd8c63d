// A stacked bar chart of a timeline in plain SVG: one bar per non-empty bucket, one segment per memory type,
// a red marker above every bucket that holds errors.

import { shortTime } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
export const TYPES = ["episodic", "decision", "session", "entity"];
const W = 800, H = 220, PAD = { left: 40, right: 10, top: 16, bottom: 24 };

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

export function timelineChart(timeline) {
  const since = Date.parse(timeline.since), until = Date.parse(timeline.until);
  const widthMs = bucketMs(timeline.bucket);
  const max = Math.max(1, ...timeline.buckets.map((b) => b.count));
  const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
  const x = (ms) => PAD.left + ((Math.max(ms, since) - since) / (until - since)) * plotW;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `memories per ${timeline.bucket}` });
  svg.append(s("line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom, class: "axis" }));
  svg.append(s("text", { x: PAD.left - 4, y: PAD.top + 4, class: "tick", "text-anchor": "end" }, String(max)));
  svg.append(s("text", { x: PAD.left - 4, y: H - PAD.bottom, class: "tick", "text-anchor": "end" }, "0"));
  svg.append(s("text", { x: PAD.left, y: H - 6, class: "tick" }, shortTime(timeline.since)));
  svg.append(s("text", { x: W - PAD.right, y: H - 6, class: "tick", "text-anchor": "end" }, shortTime(timeline.until)));
  for (const b of timeline.buckets) {
    const start = Date.parse(b.start);
    const left = x(start), right = x(Math.min(start + widthMs, until));
    const barW = Math.max(2, right - left - 1);
    const g = s("g", { class: "bar", "data-start": b.start, "data-count": b.count, "data-errors": b.errors });
    g.append(s("title", {}, `${b.start}: ${b.count} memories` +
      TYPES.filter((t) => b.by_type[t]).map((t) => `, ${t} ${b.by_type[t]}`).join("") +
      (b.errors ? `, ${b.errors} errors` : "")));
    let y = H - PAD.bottom;
    for (const type of TYPES) {
      const n = b.by_type[type] || 0;
      if (!n) continue;
      const segH = (n / max) * plotH;
      y -= segH;
      g.append(s("rect", { x: left, y, width: barW, height: segH, class: `seg t-${type}` }));
    }
    if (b.errors) g.append(s("circle", { cx: left + barW / 2, cy: Math.max(y - 6, 5), r: 4, class: "err" }));
    svg.append(g);
  }
  return svg;
}

export function legend() {
  const el = document.createElement("div");
  el.className = "legend";
  for (const type of [...TYPES, "errors"]) {
    const item = document.createElement("span");
    item.className = `key ${type === "errors" ? "k-err" : "t-" + type}`;
    item.textContent = type;
    el.append(item);
  }
  return el;
}

function bucketMs(text) {
  const m = /^(\d+)([smhdw])$/.exec(text.trim());
  const unit = { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7, w: 6.048e8 };
  return m ? Number(m[1]) * unit[m[2]] : 3.6e6;
}
