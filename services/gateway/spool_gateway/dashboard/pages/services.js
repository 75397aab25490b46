// The services page: one row per service with its status, replicas and load, refreshed every
// 2.5 s (three requests whatever the number of services: the list, their load, their status),
// and its actions.

import { h, fill } from "../dom.js";
import { get } from "../api.js";
import { actionButton, errorSlot, showError, clearError, pill, table, emptyRow } from "../ui.js";
import { loaded, pageHead } from "../ui.js";
import { number, seconds, NONE } from "../format.js";
import { hashOf } from "../router.js";
import { pauseResume, rollbackForm } from "./service_actions.js";
import { runtimeForm } from "./runtime_form.js";

const POLL_MS = 2500;
const COLUMNS = [
  { field: "name", title: "Name" },
  { field: "revision", title: "Package" },
  { field: "status", title: "Status" },
  { field: "replicas", title: "Replicas", num: true },
  { field: "queued", title: "Queued", num: true },
  { field: "inFlight", title: "In flight", num: true },
  { field: "p50", title: "p50", num: true },
  { field: "p75", title: "p75", num: true },
  { field: "perMinute", title: "Exec/min", num: true },
  { field: "actions", title: "" },
];
const NOTE = "Replicas: desired / ready / draining. Latency and executions per minute: last 60 s.";

export function renderServices(ctx) {
  const listSlot = errorSlot();
  const loadSlot = errorSlot();
  const { el, body } = table(
    COLUMNS.map((c) => c.title),
    { numeric: COLUMNS.filter((c) => c.num).map((c) => c.title), testid: "services" },
  );
  const page = { ctx, body, rows: new Map(), empty: null, poller: null };
  page.podTypes = get("/instance-types").catch(() => null);
  fill(
    ctx.main,
    pageHead("Services", h("span", { class: "muted" }, "live")),
    listSlot,
    loadSlot,
    el,
    h("p", { class: "muted legend" }, NOTE),
  );
  page.poller = ctx.poll(() => tick(page, listSlot, loadSlot), POLL_MS);
}

async function tick(page, listSlot, loadSlot) {
  const { ctx } = page;
  const query = { projectId: ctx.projectId };
  const [services, load, status] = await Promise.allSettled([
    get("/services", query, ctx.signal),
    get("/services/load", query, ctx.signal),
    get("/services/status", query, ctx.signal),
  ]);
  if (services.status === "rejected") {
    showError(listSlot, services.reason, "Could not list the services: ");
    return loaded(ctx.main);
  }
  clearError(listSlot);
  if (load.status === "rejected") showError(loadSlot, load.reason, "Load figures unavailable: ");
  else clearError(loadSlot);
  const loads = new Map((load.value ?? []).map((l) => [l.serviceId, l]));
  const statuses = new Map((status.value ?? []).map((s) => [s.serviceId, s]));
  const list = [...services.value].sort((a, b) => a.name.localeCompare(b.name));
  const failed = status.status === "rejected" ? status.reason : null;
  renderRows(page, list, (id) => ({ status: statuses.get(id), failed, load: loads.get(id) }));
  loaded(ctx.main);
}

function renderRows(page, list, figures) {
  const seen = new Set(list.map((s) => s.id));
  for (const [id, row] of page.rows) {
    if (seen.has(id)) continue;
    row.tr.remove();
    row.detail?.remove();
    page.rows.delete(id);
  }
  for (const service of list) {
    const row = page.rows.get(service.id) ?? createRow(page, service);
    page.rows.set(service.id, row);
    updateRow(row, service, figures(service.id));
  }
  keepOrder(page, list);
}

/** Re-append rows only when the order changed (moving rows would drop an open form's focus). */
function keepOrder(page, list) {
  page.empty?.remove();
  page.empty = null;
  if (list.length === 0) {
    page.empty = emptyRow(COLUMNS.length, "No services in this project.");
    page.body.append(page.empty);
    return;
  }
  const shown = [...page.body.querySelectorAll("tr[data-service-id]")];
  if (shown.map((tr) => tr.dataset.serviceId).join() === list.map((s) => s.id).join()) return;
  for (const service of list) {
    const row = page.rows.get(service.id);
    page.body.append(row.tr, ...(row.detail ? [row.detail] : []));
  }
}

function createRow(page, service) {
  const { ctx } = page;
  const slot = errorSlot("row-error");
  const cells = Object.fromEntries(
    COLUMNS.map(({ field, num }) => [
      field,
      h("td", { "data-field": field === "actions" ? null : field, class: num ? "num" : null }),
    ]),
  );
  const tr = h("tr", { "data-service-id": service.id }, Object.values(cells));
  const row = { tr, cells, detail: null, service, revision: null };
  const after = () => page.poller.now();
  row.controls = pauseResume({ serviceId: service.id, allowed: ctx.canWrite, slot, after });
  const opens = (kind, label, title) => {
    const run = () => toggle(page, row, kind);
    return actionButton({ label, action: kind, slot, title, allowed: ctx.canWrite, run });
  };
  const { pause, resume } = row.controls;
  const rollback = opens("rollback", "Roll back", "Deploy again what an earlier revision ran");
  const edit = opens("edit", "Edit", "Edit the runtime settings");
  fill(cells.actions, h("div", { class: "actions" }, pause, resume, rollback, edit), slot);
  fill(cells.name, h("a", { href: hashOf("services", service.id) }, service.name));
  return row;
}

function setText(cell, text, title = null) {
  if (cell.textContent !== text) cell.textContent = text;
  if (title === null) cell.removeAttribute("title");
  else cell.title = title;
}

function updateRow(row, service, { status, failed, load }) {
  row.service = service;
  setText(row.cells.revision, service.packageRevision ?? NONE);
  row.controls.update(service.active);
  if (status) {
    row.revision = status.revision;
    showStatus(row, status);
  } else {
    // Not read (the request failed) or not there yet (created since): no stale figures.
    if (failed) showError(row.cells.status, failed);
    else setText(row.cells.status, NONE);
    setText(row.cells.replicas, NONE);
  }
  setText(row.cells.queued, number(load?.queued));
  setText(row.cells.inFlight, number(load?.inFlight));
  setText(row.cells.p50, seconds(load?.latencyP50));
  setText(row.cells.p75, seconds(load?.latencyP75));
  setText(row.cells.perMinute, number(load?.executionsPerMinute));
}

function showStatus(row, status) {
  if (row.cells.status.textContent !== status.status) fill(row.cells.status, pill(status.status));
  const count = (state) => status.runtimeStatus.filter((r) => r.state === state).length;
  const starting = count("starting");
  const text = `${status.desiredReplicas} / ${count("ready")} / ${count("draining")}`;
  const title = `desired / ready / draining${starting ? `; ${starting} starting` : ""}`;
  setText(row.cells.replicas, starting ? `${text} (+${starting})` : text, title);
}

/** Open the row's edit or roll-back form under it (or close it when it is open). */
async function toggle(page, row, kind) {
  const open = row.detail?.dataset.kind;
  closeDetail(row);
  if (open === kind) return;
  const onCancel = () => closeDetail(row);
  const onDone = () => {
    closeDetail(row);
    page.poller.now();
  };
  const common = { allowed: page.ctx.canWrite, onDone, onCancel };
  const form =
    kind === "edit"
      ? runtimeForm({ ...common, service: row.service, podTypes: await page.podTypes })
      : rollbackForm({ ...common, serviceId: row.service.id, currentRevision: row.revision });
  const cell = h("td", { colspan: COLUMNS.length }, form);
  row.detail = h("tr", { class: "detail", dataset: { kind } }, cell);
  row.tr.after(row.detail);
  form.querySelector("input, select")?.focus();
}

function closeDetail(row) {
  row.detail?.remove();
  row.detail = null;
}
