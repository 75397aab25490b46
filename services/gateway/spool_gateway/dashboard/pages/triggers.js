// The triggers page: the project's triggers with an active toggle, and the dry run (an event
// in, which triggers would fire and why the others would not).

import { h, fill } from "../dom.js";
import { get, patch, post } from "../api.js";
import { errorSlot, showError, clearError, section, table, emptyRow, loaded } from "../ui.js";
import { pageHead, submitButton, VIEWER_TITLE } from "../ui.js";
import { hashOf } from "../router.js";
import { NONE } from "../format.js";

const COLUMNS = ["Name", "Service", "Function", "Fires on", "Mode", "Active", ""];
const EXAMPLE_EVENT = {
  resource: "Item",
  action: "Created",
  entity: {
    id: "item-1",
    name: "cat.jpg",
    dir: "/incoming",
    metadata: { system: { mimetype: "image/jpeg" } },
  },
};

export function renderTriggers(ctx) {
  const slot = errorSlot();
  const { el, body } = table(COLUMNS, { testid: "triggers" });
  const names = new Map();
  fill(ctx.main, pageHead("Triggers"), slot, el, dryRunPanel(ctx, names));
  load(ctx, body, slot, names).finally(() => loaded(ctx.main));
}

async function load(ctx, body, slot, names) {
  try {
    const query = { projectId: ctx.projectId };
    const [triggers, services] = await Promise.all([
      get("/triggers", query, ctx.signal),
      get("/services", query, ctx.signal),
    ]);
    const serviceNames = new Map(services.map((s) => [s.id, s.name]));
    triggers.forEach((t) => names.set(t.id, t.name));
    triggers.sort((a, b) => a.name.localeCompare(b.name));
    clearError(slot);
    const rows = triggers.map((t) => row(ctx, t, serviceNames));
    fill(body, rows.length ? rows : emptyRow(COLUMNS.length, "No triggers in this project."));
  } catch (error) {
    showError(slot, error, "Could not list the triggers: ");
  }
}

function firesOn(trigger) {
  const { spec } = trigger;
  if (trigger.type === "Cron") {
    return h("span", {}, h("code", {}, spec.cron), h("span", { class: "muted" }, " (cron)"));
  }
  const filter = Object.keys(spec.filter ?? {}).length ? JSON.stringify(spec.filter) : null;
  return h(
    "span",
    { title: filter ?? "no filter" },
    `${spec.resource}: ${spec.actions.join(", ")}`,
    filter ? h("span", { class: "muted" }, " + filter") : null,
  );
}

function activeToggle(ctx, trigger, slot) {
  const toggle = h("input", {
    type: "checkbox",
    "data-action": "toggle-active",
    "aria-label": `Active: ${trigger.name}`,
    checked: trigger.active,
    disabled: !ctx.canWrite,
    title: ctx.canWrite ? null : VIEWER_TITLE,
  });
  const label = h("span", {}, trigger.active ? "on" : "off");
  toggle.addEventListener("change", () => setActive(trigger, toggle, label, slot, ctx.canWrite));
  return h("label", { class: "toggle" }, toggle, label);
}

function row(ctx, trigger, serviceNames) {
  const slot = errorSlot();
  const { serviceId, functionName } = trigger.spec.operation;
  const serviceName = serviceNames.get(serviceId) ?? serviceId;
  const service = h("a", { href: hashOf("services", serviceId) }, serviceName);
  const fired = hashOf("executions", null, { serviceId, triggerId: trigger.id });
  return h(
    "tr",
    { "data-trigger-id": trigger.id },
    h("td", {}, trigger.name),
    h("td", {}, service),
    h("td", {}, h("a", { href: fired, title: "Executions this trigger created" }, functionName)),
    h("td", {}, firesOn(trigger)),
    h("td", {}, trigger.type === "Cron" ? NONE : trigger.spec.executionMode),
    h("td", {}, activeToggle(ctx, trigger, slot)),
    h("td", {}, slot),
  );
}

async function setActive(trigger, toggle, label, slot, allowed) {
  const wanted = toggle.checked;
  toggle.disabled = true;
  clearError(slot);
  try {
    const updated = await patch(`/triggers/${encodeURIComponent(trigger.id)}`, { active: wanted });
    toggle.checked = updated.active;
  } catch (error) {
    toggle.checked = !wanted;
    showError(slot, error, `Could not turn it ${wanted ? "on" : "off"}: `);
  } finally {
    toggle.disabled = !allowed;
    label.textContent = toggle.checked ? "on" : "off";
  }
}

// --- dry run ----------------------------------------------------------------------------------

function dryRunPanel(ctx, names) {
  const slot = errorSlot();
  const result = h("div", { class: "dry-run-result", "data-testid": "dry-run-result" });
  const example = JSON.stringify(EXAMPLE_EVENT, null, 2);
  const textarea = h("textarea", { name: "event", rows: 12, spellcheck: "false" }, example);
  const form = h(
    "form",
    { class: "dry-run", "data-testid": "dry-run" },
    h("label", { class: "block" }, "Event (resource, action, entity)", textarea),
    h("div", { class: "form-actions" }, submitButton("Dry run")),
    slot,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(slot);
    result.replaceChildren();
    try {
      const body = { projectId: ctx.projectId, event: readEvent(textarea.value) };
      const verdicts = await post("/triggers/dry-run", body);
      const none = h("p", { class: "muted" }, "The project has no triggers.");
      fill(result, verdicts.length ? verdicts.map((v) => verdict(v, names)) : none);
    } catch (error) {
      showError(slot, error);
    }
  });
  const title = "Dry run: which triggers would an event fire?";
  return section(title, h("div", { class: "columns" }, form, result));
}

/** The event object from the textarea; a pasted {"event": {...}} body is unwrapped. */
function readEvent(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`The event is not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error("The event must be a JSON object with resource, action and entity");
  }
  return value.event && typeof value.event === "object" ? value.event : value;
}

function verdict(v, names) {
  return h(
    "div",
    {
      class: `verdict ${v.fires ? "fires" : "skips"}`,
      "data-trigger-id": v.triggerId,
      "data-fires": String(v.fires),
    },
    h("strong", {}, v.name ?? names.get(v.triggerId) ?? v.triggerId),
    v.fires ? " fires" : " does not fire",
    v.reason ? h("span", { class: "reason" }, `: ${v.reason}`) : null,
  );
}
