// The live load chart, hand-written SVG: queue depth, in-flight and ready replicas on the left
// axis (counts), p75 latency on the right axis (seconds), and the autoscaler's decisions as
// vertical markers whose <title> gives the reason. A function of its arguments: no clock.

import { h, s } from "./dom.js";
import { clock, localTime } from "./format.js";

const SERIES = [
  { key: "queued", label: "Queue depth", axis: "left" },
  { key: "inFlight", label: "In flight", axis: "left" },
  { key: "ready", label: "Ready replicas", axis: "left" },
  { key: "p75", label: "p75 latency (s, right axis)", axis: "right" },
];

const SIZE = { width: 960, height: 260, left: 44, right: 56, top: 14, bottom: 26 };
const TICKS = 4;

/** The smallest of 1, 2, 5 × 10^k that is ≥ value. */
function niceCeil(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= value);
}

/** The top of an axis: TICKS nice steps that reach `value` (at least `floor`). */
function axisMax(value, floor) {
  return niceCeil(Math.max(floor, value) / TICKS) * TICKS;
}

function maxOf(points, keys) {
  return Math.max(0, ...points.flatMap((p) => keys.map((k) => p[k] ?? 0)));
}

/** The path of one series; a null value breaks the line. */
function linePath(points, key, x, y) {
  let path = "";
  let pen = "M";
  for (const point of points) {
    const value = point[key];
    if (value === null || value === undefined) {
      pen = "M";
      continue;
    }
    path += `${pen}${x(point.t).toFixed(1)},${y(value).toFixed(1)} `;
    pen = "L";
  }
  return path.trim();
}

/** A dot on a series' latest value, so a fresh or flat line still shows where it is. */
function lastDot(points, key, x, y) {
  const last = points.findLast((p) => p[key] !== null && p[key] !== undefined);
  if (!last) return null;
  return s("circle", { class: `dot s-${key}`, cx: x(last.t), cy: y(last[key]), r: 2.5 });
}

function grid(frame, leftMax, rightMax) {
  const { plot } = frame;
  const lines = [];
  for (let i = 0; i <= TICKS; i += 1) {
    const y = plot.bottom - (i / TICKS) * (plot.bottom - plot.top);
    const left = fmtTick((leftMax * i) / TICKS);
    const right = `${fmtTick((rightMax * i) / TICKS)} s`;
    lines.push(
      s("line", { class: "grid-line", x1: plot.left, x2: plot.right, y1: y, y2: y }),
      s("text", { class: "axis-label", x: plot.left - 6, y: y + 4, "text-anchor": "end" }, left),
      s("text", { class: "axis-label right", x: plot.right + 6, y: y + 4 }, right),
    );
  }
  return lines;
}

const fmtTick = (v) => (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3))));

function timeAxis(frame) {
  const { plot } = frame;
  const step = 3 * 60 * 1000;
  const labels = [];
  for (let t = Math.ceil(frame.start / step) * step; t <= frame.end; t += step) {
    const x = frame.x(t);
    const y = plot.bottom + 16;
    labels.push(
      s("line", { class: "grid-line", x1: x, x2: x, y1: plot.top, y2: plot.bottom }),
      s("text", { class: "axis-label", x, y, "text-anchor": "middle" }, clock(t)),
    );
  }
  return labels;
}

function decisionText(d) {
  return `${localTime(d.at)}: ${d.from ?? "?"} → ${d.to} replicas (${d.rule}): ${d.reason}`;
}

function marker(d, frame) {
  const { top, bottom } = frame.plot;
  const x = frame.x(Date.parse(d.at));
  const way = d.from === null || d.to > d.from ? "up" : d.to < d.from ? "down" : "hold";
  return s(
    "g",
    { class: `marker ${way}`, "data-testid": "decision-marker", "data-at": d.at },
    s("title", {}, decisionText(d)),
    s("line", { class: "marker-hit", x1: x, x2: x, y1: top, y2: bottom }),
    s("line", { class: "marker-line", x1: x, x2: x, y1: top, y2: bottom }),
    s("path", { class: "marker-head", d: `M${x - 5},${top} L${x + 5},${top} L${x},${top + 7} Z` }),
  );
}

function markers(decisions, frame) {
  return decisions
    .filter((d) => Date.parse(d.at) >= frame.start && Date.parse(d.at) <= frame.end)
    .map((d) => marker(d, frame));
}

/** Where [start, end] and the values land in the SVG's coordinates. */
function frameOf(now, spanMs) {
  const { width, height } = SIZE;
  const plot = {
    left: SIZE.left,
    right: width - SIZE.right,
    top: SIZE.top,
    bottom: height - SIZE.bottom,
  };
  const start = now - spanMs;
  const x = (t) => plot.left + ((t - start) / spanMs) * (plot.right - plot.left);
  return { plot, start, end: now, x };
}

function yScale(plot, max) {
  return (v) => plot.bottom - (v / max) * (plot.bottom - plot.top);
}

/** The chart's SVG for `points` ({t, queued, inFlight, ready, p75}) and `decisions` (the
 * scaling route's answer) over [now - spanMs, now]. */
export function loadChart({ points, decisions, now, spanMs }) {
  const frame = frameOf(now, spanMs);
  const { plot } = frame;
  const shown = points.filter((p) => p.t >= frame.start && p.t <= now);
  const leftMax = axisMax(maxOf(shown, ["queued", "inFlight", "ready"]), TICKS);
  const rightMax = axisMax(maxOf(shown, ["p75"]), 0.1);
  const y = { left: yScale(plot, leftMax), right: yScale(plot, rightMax) };
  const lines = SERIES.map(({ key, axis }) => {
    const d = linePath(shown, key, frame.x, y[axis]) || "M0,0";
    return s("path", { class: `series s-${key}`, d });
  });
  const dots = SERIES.map(({ key, axis }) => lastDot(shown, key, frame.x, y[axis]));
  const box = { x: plot.left, y: plot.top, width: plot.right - plot.left };
  box.height = plot.bottom - plot.top;
  const empty = { class: "chart-empty", x: SIZE.width / 2, y: SIZE.height / 2 };
  return s(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${SIZE.width} ${SIZE.height}`,
      role: "img",
      "aria-label": "Queue depth, in flight, ready replicas and p75 latency, last 15 minutes",
      "data-testid": "load-chart",
    },
    grid(frame, leftMax, rightMax),
    timeAxis(frame),
    s("rect", { class: "plot-frame", ...box }),
    lines,
    dots,
    markers(decisions, frame),
    shown.length ? null : s("text", { ...empty, "text-anchor": "middle" }, "Collecting data…"),
  );
}

/** The legend under the chart, with each series' latest value. */
export function legend(latest, format) {
  const item = (swatch, label, value) =>
    h("li", {}, h("span", { class: `swatch ${swatch}` }), label, value);
  return h(
    "ul",
    { class: "legend" },
    SERIES.map(({ key, label }) =>
      item(`s-${key}`, `${label}: `, h("strong", {}, format(key, latest?.[key]))),
    ),
    item("marker-swatch", "scale up", null),
    item("marker-swatch down", "scale down", null),
    item("marker-swatch hold", "hold (hover a marker for the reason)", null),
  );
}
