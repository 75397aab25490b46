// The "edit runtime settings" form: inputs named by the Service field path, a PATCH with only
// what changed, and each of the API's field errors shown next to its input.

import { h } from "../dom.js";
import { patch } from "../api.js";
import { errorSlot, showError, clearError, submitButton } from "../ui.js";

const SCALERS = [
  ["", "none (fixed replicas)"],
  ["rabbitmq", "queue length (rabbitmq)"],
  ["rps", "requests per second (rps)"],
];
const ON_RESET = [
  ["failed", "failed"],
  ["rerun", "rerun"],
];
// What the API fills in for an autoscaler field it is not sent (KubernetesRuntime's defaults).
const SCALER_DEFAULTS = {
  minReplicas: 0,
  maxReplicas: 1,
  queueLength: 1000,
  threshold: 10,
  rateSeconds: 30,
  cooldownPeriod: 300,
  pollingInterval: 10,
};

const RMQ = "rabbitmq";
// `scaler`: shown for any autoscaler (true) or for one type only.
const FIELDS = [
  { path: "runtime.concurrency", label: "Concurrency", kind: "int" },
  { path: "runtime.podType", label: "Pod type", kind: "podType" },
  { path: "runtime.numReplicas", label: "Replicas", kind: "int" },
  { path: "runtime.autoscaler.type", label: "Autoscaler", kind: "select", options: SCALERS },
  { path: "runtime.autoscaler.minReplicas", label: "Min replicas", kind: "int", scaler: true },
  { path: "runtime.autoscaler.maxReplicas", label: "Max replicas", kind: "int", scaler: true },
  { path: "runtime.autoscaler.queueLength", label: "Queue length", kind: "int", scaler: RMQ },
  { path: "runtime.autoscaler.threshold", label: "RPS threshold", kind: "int", scaler: "rps" },
  { path: "runtime.autoscaler.cooldownPeriod", label: "Cooldown (s)", kind: "int", scaler: true },
  { path: "runtime.autoscaler.pollingInterval", label: "Polling (s)", kind: "int", scaler: true },
  { path: "drainTime", label: "Drain time (s)", kind: "int" },
  { path: "executionTimeout", label: "Execution timeout (s)", kind: "int" },
  { path: "maxAttempts", label: "Max attempts", kind: "int" },
  { path: "onReset", label: "On reset", kind: "select", options: ON_RESET },
];

/** The value a field shows for `service` (autoscaler fields: the defaults when it has none). */
function current(service, path) {
  if (path === "runtime.autoscaler.type") return service.runtime.autoscaler?.type ?? "";
  if (path.startsWith("runtime.autoscaler.")) {
    const key = path.split(".")[2];
    return service.runtime.autoscaler?.[key] ?? SCALER_DEFAULTS[key];
  }
  return path.split(".").reduce((value, key) => value?.[key], service) ?? "";
}

function setPath(target, path, value) {
  const keys = path.split(".");
  const last = keys.pop();
  let node = target;
  for (const key of keys) node = node[key] ??= {};
  node[last] = value;
}

function control(field, value, podTypes) {
  const name = field.path;
  if (field.kind === "int") {
    return h("input", { name, type: "number", step: 1, value: String(value), required: true });
  }
  const options = field.kind === "podType" ? podTypeOptions(podTypes, value) : field.options;
  if (!options) return h("input", { name, value: String(value) });
  const select = h(
    "select",
    { name },
    options.map(([v, text]) => h("option", { value: v }, text)),
  );
  select.value = String(value);
  return select;
}

function podTypeOptions(podTypes, value) {
  if (!podTypes) return null; // the catalog did not load: a text input
  const describe = (t) =>
    [t.name, `${t.cpu.toFixed(2)} CPU`, `${(t.memoryBytes / 1e9).toFixed(1)} GB`]
      .concat(t.gpus ? [`${t.gpus} GPU`] : [])
      .join(" · ");
  const options = podTypes.map((t) => [t.name, describe(t)]);
  if (!podTypes.some((t) => t.name === value)) options.unshift([value, value]);
  return options;
}

/** Read the form: the merge patch of what changed, and the client-side problems. */
function changes(service, form) {
  const body = {};
  const problems = [];
  const type = form.elements["runtime.autoscaler.type"].value;
  for (const field of FIELDS) {
    const raw = form.elements[field.path].value.trim();
    if (field.scaler && (type === "" || (field.scaler !== true && field.scaler !== type))) continue;
    if (raw === String(current(service, field.path))) continue;
    if (field.kind === "int" && !/^-?\d+$/.test(raw)) {
      problems.push({ field: field.path, reason: "must be a whole number" });
      continue;
    }
    if (field.path !== "runtime.autoscaler.type") {
      setPath(body, field.path, field.kind === "int" ? Number(raw) : raw);
    }
  }
  const typeChanged = type !== current(service, "runtime.autoscaler.type");
  if (type === "" && typeChanged) setPath(body, "runtime.autoscaler", null); // merge patch: remove
  if (type !== "" && (typeChanged || body.runtime?.autoscaler)) {
    setPath(body, "runtime.autoscaler.type", type); // the API tells the kinds apart by it
  }
  return { body, problems };
}

/** Where an error about `field` goes: its input's slot, or the nearest enclosing one. */
function slotFor(form, field) {
  let path = field;
  while (path) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(path)}"]`);
    if (slot) return slot;
    const shorter = path.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
    if (shorter === path) return null;
    path = shorter;
  }
  return null;
}

function showFieldErrors(form, details) {
  for (const detail of details) {
    const slot = slotFor(form, detail.field ?? "");
    if (slot) slot.textContent = [slot.textContent, detail.reason].filter(Boolean).join("; ");
  }
}

function clearFieldErrors(form) {
  form.querySelectorAll("[data-error-for]").forEach((el) => (el.textContent = ""));
}

function showScalerFields(form) {
  const type = form.elements["runtime.autoscaler.type"].value;
  form.querySelectorAll("[data-scaler]").forEach((el) => {
    const scaler = el.dataset.scaler;
    el.hidden = type === "" || (scaler !== "any" && scaler !== type);
  });
}

function fieldRow(field, service, podTypes) {
  const scaler = field.scaler === true ? "any" : field.scaler;
  return h(
    "label",
    { class: "field", dataset: scaler ? { scaler } : {} },
    h("span", { class: "label" }, field.label),
    control(field, current(service, field.path), podTypes),
    h("span", { class: "field-error", "data-error-for": field.path }),
  );
}

/** The form for `service`; `onDone(updated)` after a successful PATCH. */
export function runtimeForm({ service, podTypes, allowed, onDone, onCancel }) {
  const slot = errorSlot();
  const note = h("span", { class: "muted" });
  const submit = submitButton("Save", allowed);
  const cancel = h("button", { type: "button", class: "btn", onclick: onCancel }, "Cancel");
  const form = h(
    "form",
    { class: "runtime-form", "data-testid": "edit-runtime", novalidate: true },
    h("div", { class: "fields" }, FIELDS.map((f) => fieldRow(f, service, podTypes))),
    h("span", { class: "field-error", "data-error-for": "runtime.autoscaler" }),
    h("span", { class: "field-error", "data-error-for": "runtime" }),
    h("div", { class: "form-actions" }, submit, cancel, note),
    slot,
  );
  form.elements["runtime.autoscaler.type"].addEventListener("change", () => showScalerFields(form));
  showScalerFields(form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save(form, service, { slot, note, submit, allowed, onDone });
  });
  return form;
}

async function save(form, service, { slot, note, submit, allowed, onDone }) {
  clearError(slot);
  clearFieldErrors(form);
  note.textContent = "";
  const { body, problems } = changes(service, form);
  if (problems.length > 0) return showFieldErrors(form, problems);
  if (Object.keys(body).length === 0) {
    note.textContent = "Nothing changed.";
    return;
  }
  submit.disabled = true;
  try {
    onDone(await patch(`/services/${encodeURIComponent(service.id)}`, body));
  } catch (error) {
    showError(slot, error);
    showFieldErrors(form, error.details ?? []);
  } finally {
    submit.disabled = !allowed;
  }
}
