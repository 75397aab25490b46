// The executions page: filters kept in the hash (#/executions?serviceId=&status=...) and the
// newest matching executions of the project, refreshed every 5 s.

import { h, fill } from "../dom.js";
import { get } from "../api.js";
import { errorSlot, showError, clearError, pill, table, emptyRow, timeEl, loaded } from "../ui.js";
import { pageHead, executionLink } from "../ui.js";
import { seconds, toLocalInput, fromLocalInput, EXECUTION_STATUSES, NONE } from "../format.js";
import { hashOf } from "../router.js";

const POLL_MS = 5000;
const LIMIT = 100;
const FILTERS = ["serviceId", "functionName", "status", "triggerId", "from", "to"];
const COLUMNS = [
  "Execution",
  "Service",
  "Function",
  "Status",
  "Progress",
  "Created",
  "Duration",
  "Attempts",
];

export function renderExecutions(ctx) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, ctx.query.get(k) ?? ""]));
  const slot = errorSlot();
  const { el, body } = table(COLUMNS, { numeric: ["Duration", "Attempts"], testid: "executions" });
  fill(
    ctx.main,
    pageHead("Executions", h("span", { class: "muted" }, `newest ${LIMIT}`)),
    filterForm(ctx, filters),
    slot,
    el,
  );
  ctx.poll(async () => {
    try {
      const query = { ...filters, projectId: ctx.projectId, limit: LIMIT };
      const list = await get("/executions", query, ctx.signal);
      clearError(slot);
      fill(body, list.length ? list.map(row) : emptyRow(COLUMNS.length, "No executions match."));
    } catch (error) {
      showError(slot, error, "Could not list the executions: ");
    }
    loaded(ctx.main);
  }, POLL_MS);
}

const field = (label, control) =>
  h("label", { class: "field" }, h("span", { class: "label" }, label), control);

const input = (name, value, extra = {}) => h("input", { name, value, ...extra });

function statusSelect(value) {
  const select = h(
    "select",
    { name: "status" },
    h("option", { value: "" }, "any status"),
    EXECUTION_STATUSES.map((s) => h("option", { value: s }, s)),
  );
  select.value = value;
  return select;
}

function filterForm(ctx, filters) {
  const slot = errorSlot();
  const services = h("select", { name: "serviceId" }, h("option", { value: "" }, "all services"));
  const when = (name) => input(name, toLocalInput(filters[name]), { type: "datetime-local" });
  const form = h(
    "form",
    { class: "filters", "data-testid": "filters" },
    field("Service", services),
    field("Function", input("functionName", filters.functionName, { placeholder: "any" })),
    field("Status", statusSelect(filters.status)),
    field("Trigger id", input("triggerId", filters.triggerId, { placeholder: "any" })),
    field("Created from", when("from")),
    field("to (local time)", when("to")),
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "btn primary" }, "Apply"),
      h("a", { href: "#/executions", class: "btn" }, "Clear"),
    ),
    slot,
  );
  fillServices(ctx, services, filters.serviceId, slot);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(FILTERS.map((k) => [k, form.elements[k].value.trim()]));
    values.from = fromLocalInput(values.from);
    values.to = fromLocalInput(values.to);
    ctx.go(hashOf("executions", null, values));
  });
  return form;
}

async function fillServices(ctx, select, selected, slot) {
  try {
    const services = await get("/services", { projectId: ctx.projectId }, ctx.signal);
    services.sort((a, b) => a.name.localeCompare(b.name));
    select.append(...services.map((s) => h("option", { value: s.id }, s.name)));
    if (selected && !services.some((s) => s.id === selected)) {
      select.append(h("option", { value: selected }, selected)); // a deleted service's history
    }
    select.value = selected;
  } catch (error) {
    showError(slot, error, "Could not list the services: ");
  }
}

function progress(e) {
  const { percentComplete, status } = e.latestStatus;
  const value = percentComplete ?? (status === "success" ? 100 : null);
  if (value === null) return NONE;
  const bar = h("span", { class: "bar" });
  bar.style.width = `${Math.max(0, Math.min(100, value))}%`;
  return h("span", { class: "mini-progress" }, h("span", { class: "track" }, bar), `${value} %`);
}

function row(e) {
  const service = e.serviceName
    ? h("a", { href: hashOf("services", e.serviceId) }, e.serviceName)
    : e.serviceId;
  return h(
    "tr",
    { "data-execution-id": e.id },
    h("td", {}, executionLink(e.id)),
    h("td", {}, service),
    h("td", {}, e.functionName),
    h("td", {}, pill(e.latestStatus.status)),
    h("td", {}, progress(e)),
    h("td", {}, timeEl(e.createdAt)),
    h("td", { class: "num" }, seconds(e.duration)),
    h("td", { class: "num" }, `${e.attempts} / ${e.maxAttempts}`),
  );
}
