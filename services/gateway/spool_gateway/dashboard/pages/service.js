// The service page: header and pause/resume, the live load chart with the autoscaler's
// decisions, the replicas (with restart), and the panels of service_panels.js.

import { h, fill } from "../dom.js";
import { get, post } from "../api.js";
import { loadChart, legend } from "../chart.js";
import { loadJson, saveJson } from "../session.js";
import { actionButton, errorSlot, showError, clearError, pill, section, table } from "../ui.js";
import { emptyRow, timeEl, loaded } from "../ui.js";
import { number, seconds, NONE } from "../format.js";
import { pauseResume } from "./service_actions.js";
import { runPanel, recentExecutions, notifications, logsTail } from "./service_panels.js";

const FAST_MS = 2000;
const SLOW_MS = 5000;
const MINUTE_MS = 60 * 1000;
const KEEP_MS = 60 * MINUTE_MS; // the history kept per service in sessionStorage
const SPANS = [1, 5, 15, 60]; // minutes the chart can show
const SPAN_KEY = "chart-span-minutes";

/** The chart's span: the one last chosen in this tab, 5 minutes at first. */
function spanMs() {
  const minutes = Number(loadJson(SPAN_KEY, 5));
  return (SPANS.includes(minutes) ? minutes : 5) * MINUTE_MS;
}

function spanPicker(onChange) {
  const chosen = spanMs() / MINUTE_MS;
  const options = SPANS.map((m) =>
    h("option", { value: String(m), selected: m === chosen }, m === 60 ? "1 hour" : `${m} min`),
  );
  const select = h("select", { "data-testid": "span", "aria-label": "Chart span" }, ...options);
  select.addEventListener("change", () => {
    saveJson(SPAN_KEY, Number(select.value));
    onChange();
  });
  return h("label", { class: "span-picker" }, "Show the last ", select);
}

const servicePath = (id, tail = "") => `/services/${encodeURIComponent(id)}${tail}`;

export function renderService(ctx) {
  const page = { ctx, id: ctx.id, replicas: new Map(), decisionsKey: null };
  page.headSlot = errorSlot();
  page.chartSlot = errorSlot();
  page.replicaSlot = errorSlot();
  page.title = h("h1", {}, ctx.id);
  page.status = h("span", { "data-testid": "status", class: "pill off" }, NONE);
  page.facts = h("span", { class: "facts" });
  const after = () => page.fast.now();
  const slot = page.headSlot;
  page.controls = pauseResume({ serviceId: ctx.id, allowed: ctx.canWrite, slot, after });
  page.chart = h("div", { class: "chart-box" });
  page.legend = h("div");
  page.decisions = table(["Time", "Replicas", "Rule", "Reason"], { testid: "decisions" });
  page.replicaTable = table(["Replica", "State", "Revision", "Since", "Reason", ""], {
    numeric: ["Revision"],
    testid: "replicas",
  });
  page.panels = h("div", { class: "columns" });
  fill(
    ctx.main,
    head(page),
    section(
      "Load",
      spanPicker(() => page.fast.now()),
      page.chartSlot,
      page.chart,
      page.legend,
    ),
    h(
      "div",
      { class: "columns" },
      section("Autoscaler decisions", page.decisions.el),
      section("Replicas", page.replicaSlot, page.replicaTable.el),
    ),
    page.panels,
  );
  page.fast = ctx.poll(() => fastTick(page), FAST_MS);
}

function head(page) {
  return [
    h(
      "div",
      { class: "page-head" },
      h("a", { href: "#/services", class: "crumb" }, "Services /"),
      page.title,
      page.status,
      page.facts,
      h("div", { class: "spacer" }),
      h("div", { class: "actions" }, page.controls.pause, page.controls.resume),
    ),
    page.headSlot,
  ];
}

async function fastTick(page) {
  const { ctx, id } = page;
  const since = new Date(Date.now() - KEEP_MS).toISOString();
  const [service, status, load, scaling] = await Promise.allSettled([
    get(servicePath(id), null, ctx.signal),
    get(servicePath(id, "/status"), null, ctx.signal),
    get("/services/load", { serviceId: id }, ctx.signal),
    get(servicePath(id, "/scaling"), { since, limit: 200 }, ctx.signal),
  ]);
  if (service.status === "rejected") {
    showError(page.headSlot, service.reason, "Could not read the service: ");
    return loaded(ctx.main);
  }
  showHead(page, service.value, status);
  showReplicas(page, status);
  showChart(page, status, load, scaling);
  if (!page.slow) startPanels(page, service.value);
}

function showHead(page, service, status) {
  page.title.textContent = service.name;
  page.controls.update(service.active);
  if (status.status === "rejected") {
    showError(page.headSlot, status.reason, "Status unavailable: ");
    return;
  }
  const { status: text, revision } = status.value;
  page.status.className = pill(text).className;
  page.status.textContent = text;
  const facts = [
    `service revision ${revision}`,
    `package ${service.packageRevision}`,
    service.active ? "active" : "paused",
    service.crashloop ? "deactivated (crash loop)" : null,
  ];
  page.facts.textContent = facts.filter(Boolean).join(" · ");
}

/** The lower panels; the page counts as loaded once their first data is shown too. */
function startPanels(page, service) {
  const { ctx } = page;
  const run = runPanel(ctx, service);
  const recent = recentExecutions(ctx, service.id);
  const notes = notifications(ctx, service.id);
  const logs = logsTail(ctx, service.id);
  fill(page.panels, h("div", {}, run.el, recent.el), h("div", {}, notes.el));
  ctx.main.append(logs.el);
  let first = run.ready;
  page.slow = ctx.poll(async () => {
    await Promise.allSettled([recent.refresh(), notes.refresh(), logs.refresh(), first]);
    if (first) loaded(ctx.main);
    first = null;
  }, SLOW_MS);
}

// --- chart ------------------------------------------------------------------------------------

function readyCount(status) {
  if (status.status !== "fulfilled") return null;
  return status.value.runtimeStatus.filter((r) => r.state === "ready").length;
}

/** Add this tick's point to the history kept in sessionStorage (so a reload keeps it). */
function record(page, status, load) {
  const key = `spool.chart.${page.id}`;
  const now = Date.now();
  const loads = load.status === "fulfilled" ? load.value : [];
  const sample = loads.find((l) => l.serviceId === page.id);
  const point = {
    t: now,
    queued: sample?.queued ?? null,
    inFlight: sample?.inFlight ?? null,
    ready: readyCount(status),
    p75: sample?.latencyP75 ?? null,
  };
  const points = [...loadJson(key, []).filter((p) => p.t >= now - KEEP_MS), point];
  saveJson(key, points);
  return { now, point, points };
}

function showChart(page, status, load, scaling) {
  const { now, point, points } = record(page, status, load);
  const failed = [load, scaling].find((r) => r.status === "rejected");
  if (failed) showError(page.chartSlot, failed.reason, "Chart data missing: ");
  else clearError(page.chartSlot);
  const decisions = scaling.status === "fulfilled" ? scaling.value : [];
  fill(page.chart, loadChart({ points, decisions, now, spanMs: spanMs() }));
  fill(page.legend, legend(point, (key, v) => (key === "p75" ? seconds(v) : number(v))));
  if (scaling.status === "fulfilled") showDecisions(page, decisions);
}

function decisionRow(d) {
  return h(
    "tr",
    { "data-decision-at": d.at },
    h("td", { class: "nowrap" }, timeEl(d.at)),
    h("td", { class: "nowrap" }, `${d.from ?? "?"} → ${d.to}`),
    h("td", {}, d.rule),
    h("td", { title: JSON.stringify(d.inputs) }, d.reason),
  );
}

function showDecisions(page, decisions) {
  const key = decisions.map((d) => d.at).join();
  if (key === page.decisionsKey) return;
  page.decisionsKey = key;
  const rows = decisions.length
    ? decisions.map(decisionRow)
    : emptyRow(4, "No scaling decisions in the last 15 minutes.");
  fill(page.decisions.body, rows);
}

// --- replicas ---------------------------------------------------------------------------------

function showReplicas(page, status) {
  if (status.status === "rejected") return showError(page.replicaSlot, status.reason);
  clearError(page.replicaSlot);
  const body = page.replicaTable.body;
  const live = status.value.runtimeStatus;
  const ids = new Set(live.map((r) => r.replicaId));
  for (const [id, row] of page.replicas) {
    if (ids.has(id)) continue;
    row.tr.remove();
    page.replicas.delete(id);
  }
  body.querySelector("tr.empty")?.remove();
  if (live.length === 0) body.append(emptyRow(6, "No live replicas."));
  for (const replica of live) {
    const row = page.replicas.get(replica.replicaId) ?? replicaRow(page, replica.replicaId);
    page.replicas.set(replica.replicaId, row);
    updateReplica(row, replica);
  }
}

function replicaRow(page, replicaId) {
  const slot = errorSlot();
  const note = h("span", { class: "muted" });
  const restart = actionButton({
    label: "Restart",
    action: "restart-replica",
    slot,
    allowed: page.ctx.canWrite,
    title: "Drain this replica; a new one takes its place",
    run: async () => {
      const tail = `/replicas/${encodeURIComponent(replicaId)}/restart`;
      const answer = await post(servicePath(page.id, tail));
      note.textContent = answer?.status ? ` ${answer.status}…` : "";
      page.fast.now();
    },
  });
  const cells = [h("td", { class: "mono" }, replicaId), h("td"), h("td", { class: "num" })];
  cells.push(h("td"), h("td"));
  const tr = h("tr", { "data-replica-id": replicaId }, cells, h("td", {}, restart, note, slot));
  page.replicaTable.body.append(tr);
  return { tr, cells };
}

function updateReplica(row, replica) {
  const [, state, revision, since, reason] = row.cells;
  if (state.textContent !== replica.state) {
    fill(state, h("span", { class: `state ${replica.state}` }, replica.state));
  }
  revision.textContent = replica.revision ?? NONE;
  if (since.querySelector("time")?.dateTime !== replica.updatedAt) {
    fill(since, timeEl(replica.updatedAt));
  }
  reason.textContent = replica.reason ?? "";
}
