// The service page's lower panels: the Run form, recent executions, notifications and the
// logs tail. Each answers {el, refresh} (the Run panel {el, ready}).

import { h, fill } from "../dom.js";
import { get, post, api } from "../api.js";
import { errorSlot, showError, clearError, pill, section, table, emptyRow, timeEl } from "../ui.js";
import { executionLink, submitButton } from "../ui.js";
import { localTime, seconds } from "../format.js";
import { hashOf } from "../router.js";

const MAX_LOG_LINES = 200;
const LOG_PAGES_PER_TICK = 5;
const LOG_HISTORY_MS = 60 * 60 * 1000;

// --- run --------------------------------------------------------------------------------------

const EXAMPLES = { String: "", Integer: 0, Number: 0, Float: 0, Boolean: false, Json: {} };

/** An input object with every declared input at its default (or an example value). */
function template(fn) {
  const input = {};
  for (const io of fn?.input ?? []) input[io.name] = io.value ?? EXAMPLES[io.type] ?? null;
  return JSON.stringify(input, null, 2);
}

function functionPicker(functions) {
  if (!functions) return h("input", { name: "functionName", value: "run", required: true });
  const options = functions.map((f) => h("option", { value: f.name }, f.name));
  return h("select", { name: "functionName" }, options);
}

/** Run a function of the service with a JSON input, then open the new execution. Answers
 * {el, ready}: the form appears once the function list has loaded (or failed to). */
export function runPanel(ctx, service) {
  const el = section("Run", h("p", { class: "muted" }, "Loading the functions…"));
  const ready = listFunctions(service).then(({ functions, error }) => {
    el.lastChild.replaceWith(runForm(ctx, service, functions, error));
  });
  return { el, ready };
}

function runForm(ctx, service, functions, listError) {
  const slot = errorSlot();
  if (listError) showError(slot, listError, "Could not list the functions (type a name): ");
  const picker = functionPicker(functions);
  const textarea = h("textarea", { name: "input", rows: 6, spellcheck: "false" }, "{}");
  const submit = submitButton("Run", ctx.canWrite);
  const form = h(
    "form",
    { class: "run-form", "data-testid": "run" },
    h("label", {}, "Function ", picker),
    h("label", { class: "block" }, "Input (JSON)", textarea),
    h("div", { class: "form-actions" }, submit),
    slot,
  );
  if (functions) offerTemplates(functions, picker, textarea);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(slot);
    submit.disabled = true;
    try {
      const body = { functionName: picker.value.trim(), input: parseInput(textarea.value) };
      const execution = await post(`/executions/${encodeURIComponent(service.id)}`, body);
      ctx.go(hashOf("executions", execution.id));
    } catch (error) {
      showError(slot, error);
    } finally {
      submit.disabled = !ctx.canWrite;
    }
  });
  return form;
}

function parseInput(text) {
  let input;
  try {
    input = JSON.parse(text.trim() || "{}");
  } catch (error) {
    throw new Error(`The input is not valid JSON: ${error.message}`);
  }
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new Error('The input must be a JSON object: {"name": value, ...}');
  }
  return input;
}

/** The module's functions in the package revision the service pins (null: unknown). */
async function listFunctions(service) {
  try {
    const path = `/packages/${encodeURIComponent(service.packageId)}`;
    const pkg = await get(path, { version: service.packageRevision });
    const module = pkg.modules?.find((m) => m.name === service.moduleName);
    return { functions: module?.functions?.length ? module.functions : null };
  } catch (error) {
    return { functions: null, error };
  }
}

/** Fill the input with the chosen function's inputs until the user edits it. */
function offerTemplates(functions, select, textarea) {
  let edited = false;
  textarea.addEventListener("input", () => (edited = true));
  const fillTemplate = () => {
    if (!edited) textarea.value = template(functions.find((f) => f.name === select.value));
  };
  select.addEventListener("change", fillTemplate);
  fillTemplate();
}

// --- recent executions ------------------------------------------------------------------------

export function recentExecutions(ctx, serviceId) {
  const slot = errorSlot();
  const { el, body } = table(["Execution", "Function", "Status", "Created", "Duration"], {
    numeric: ["Duration"],
    testid: "recent-executions",
  });
  const all = hashOf("executions", null, { serviceId });
  const more = h("a", { href: all }, "All executions of this service →");
  const query = { serviceId, projectId: ctx.projectId, limit: 20 };
  const refresh = async () => {
    try {
      const list = await get("/executions", query, ctx.signal);
      clearError(slot);
      fill(body, list.length ? list.map(executionRow) : emptyRow(5, "No executions yet."));
    } catch (error) {
      showError(slot, error);
    }
  };
  return { el: section("Recent executions", slot, el, more), refresh };
}

function executionRow(e) {
  return h(
    "tr",
    { "data-execution-id": e.id },
    h("td", {}, executionLink(e.id)),
    h("td", {}, e.functionName),
    h("td", {}, pill(e.latestStatus.status)),
    h("td", {}, timeEl(e.createdAt)),
    h("td", { class: "num" }, seconds(e.duration)),
  );
}

// --- notifications ----------------------------------------------------------------------------

export function notifications(ctx, serviceId) {
  const slot = errorSlot();
  const list = h("ul", { class: "notifications", "data-testid": "notifications" });
  const path = `/services/${encodeURIComponent(serviceId)}/notifications`;
  const refresh = async () => {
    try {
      const items = await get(path, { limit: 20 }, ctx.signal);
      clearError(slot);
      const none = h("li", { class: "muted" }, "No notifications.");
      fill(list, items.length ? items.map(notification) : none);
    } catch (error) {
      showError(slot, error);
    }
  };
  return { el: section("Notifications", slot, list), refresh };
}

function notification(n) {
  return h(
    "li",
    { class: n.deactivated ? "deactivated" : null, "data-notification-id": n.id },
    h(
      "div",
      {},
      h("strong", {}, n.title),
      " ",
      h("span", { class: "muted" }, n.type),
      " ",
      timeEl(n.createdAt),
    ),
    h("div", {}, n.message),
    n.replicaId ? h("div", { class: "muted mono" }, `replica ${n.replicaId}`) : null,
    n.logTail?.length ? h("pre", { class: "log-tail" }, n.logTail.join("\n")) : null,
  );
}

// --- logs -------------------------------------------------------------------------------------

function logLine(line) {
  const who = line.executionId ? line.executionId.slice(0, 8) : (line.replicaId ?? "");
  return `${localTime(line.timestamp)} ${who} ${line.message}`;
}

/**
 * The service's newest log lines of the last hour (the API's `tail`), then what comes,
 * following the checkpoint. A tail that is still behind after LOG_PAGES_PER_TICK pages
 * jumps to the newest lines on the next tick, as a tail of a chatty service should.
 */
export function logsTail(ctx, serviceId) {
  const slot = errorSlot();
  const pre = h("pre", { class: "logs", "data-testid": "logs" });
  const state = { checkpoint: null, lines: [] };
  const start = new Date(Date.now() - LOG_HISTORY_MS).toISOString();
  const refresh = async () => {
    try {
      let caughtUp = false;
      for (let i = 0; i < LOG_PAGES_PER_TICK && !caughtUp; i += 1) {
        const newest = state.checkpoint === null;
        const body = newest
          ? { serviceId, start, tail: MAX_LOG_LINES }
          : { serviceId, start, size: MAX_LOG_LINES, checkpoint: state.checkpoint };
        const page = await api("POST", "/services/logs", { body, signal: ctx.signal });
        const lines = page.logs.map(logLine);
        state.checkpoint = page.checkpoint;
        state.lines = newest ? lines : [...state.lines, ...lines].slice(-MAX_LOG_LINES);
        caughtUp = page.stop;
      }
      if (!caughtUp) state.checkpoint = null;
      clearError(slot);
      showLines(pre, state.lines);
    } catch (error) {
      showError(slot, error);
    }
  };
  return { el: section("Logs", slot, pre), refresh };
}

function showLines(pre, lines) {
  const text = lines.length ? lines.join("\n") : "No log lines in the last hour.";
  if (pre.textContent === text) return;
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = text;
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}
