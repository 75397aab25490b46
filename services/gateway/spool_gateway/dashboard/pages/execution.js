// The execution page: status, progress, status log, input, output, error, attempts and logs,
// polled every second until the execution ends; rerun and terminate.

import { h, fill } from "../dom.js";
import { get, post } from "../api.js";
import { actionButton, errorSlot, showError, clearError, setEnabled } from "../ui.js";
import { pill, section, table, timeEl, loaded } from "../ui.js";
import { localTime, seconds, tone, TERMINAL, NONE } from "../format.js";
import { hashOf } from "../router.js";

const POLL_MS = 1000;
const FAILED = new Set(["failed", "system-failure", "timeout"]);

export function renderExecution(ctx) {
  const page = { ctx, path: `/executions/${encodeURIComponent(ctx.id)}`, after: 0, lines: [] };
  page.slot = errorSlot();
  page.actionSlot = errorSlot();
  page.status = h("span", { class: "pill off", "data-testid": "status" }, NONE);
  page.bar = h("div", { class: "bar" });
  page.progress = h(
    "div",
    {
      class: "progress",
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": 0,
      "data-testid": "progress",
    },
    page.bar,
  );
  page.progressText = h("span", { class: "muted" });
  page.facts = h("dl", { class: "facts-list" });
  page.statusLog = table(["Time", "Status", "Attempt", "Replica", "Progress", "Message"], {
    numeric: ["Attempt", "Progress"],
    testid: "status-log",
  });
  page.input = h("pre", { class: "json", "data-testid": "input" });
  page.output = h("pre", { class: "json", "data-testid": "output" });
  page.error = h("div", { "data-testid": "error-detail" });
  page.attempts = h("span", { "data-testid": "attempts" });
  page.logs = h("pre", { class: "logs", "data-testid": "logs" });
  const button = (label, action, run, kind = "") =>
    actionButton({ label, action, run, kind, slot: page.actionSlot, allowed: ctx.canWrite });
  page.rerun = button("Rerun", "rerun", () => rerun(page));
  page.terminate = button("Terminate", "terminate", () => terminate(page), "danger");
  fill(ctx.main, ...layout(page));
  ctx.poll(() => tick(page), POLL_MS);
}

function layout(page) {
  return [
    h(
      "div",
      { class: "page-head" },
      h("a", { href: "#/executions", class: "crumb" }, "Executions /"),
      h("h1", { class: "mono" }, page.ctx.id),
      page.status,
      h("div", { class: "spacer" }),
      h("div", { class: "actions" }, page.rerun, page.terminate),
    ),
    page.actionSlot,
    page.slot,
    section(
      "Progress",
      h("div", { class: "progress-row" }, page.progress, page.progressText),
      page.facts,
    ),
    h("div", { class: "columns" }, section("Input", page.input), section("Output", page.output)),
    section("Error", page.error),
    section("Status log", page.statusLog.el),
    section("Logs", page.logs),
  ];
}

async function tick(page) {
  const { ctx } = page;
  let execution;
  try {
    execution = await get(page.path, null, ctx.signal);
    clearError(page.slot);
  } catch (error) {
    showError(page.slot, error, "Could not read the execution: ");
    loaded(ctx.main);
    return error.status !== 404; // a missing execution will not appear: stop asking
  }
  show(page, execution);
  await readLogs(page);
  loaded(ctx.main);
  return !TERMINAL.has(execution.latestStatus.status); // false: it ended, stop polling
}

function show(page, e) {
  const latest = e.latestStatus;
  page.status.className = `pill ${tone(latest.status)}`;
  page.status.textContent = latest.status;
  const percent = latest.percentComplete ?? (latest.status === "success" ? 100 : 0);
  page.progress.setAttribute("aria-valuenow", String(percent));
  page.bar.style.width = `${Math.max(0, Math.min(100, percent))}%`;
  page.progressText.textContent = [`${percent} %`, latest.message].filter(Boolean).join(" · ");
  page.attempts.textContent = `${e.attempts} of ${e.maxAttempts}`;
  fill(page.facts, facts(page, e));
  page.input.textContent = JSON.stringify(e.input, null, 2);
  page.output.textContent = JSON.stringify(e.output ?? null, null, 2);
  fill(page.error, errorDetail(e));
  fill(page.statusLog.body, e.statusLog.map(logRow));
  setEnabled(page.terminate, !TERMINAL.has(latest.status));
  setEnabled(page.rerun, TERMINAL.has(latest.status));
}

function facts(page, e) {
  const item = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
  const service = h("a", { href: hashOf("services", e.serviceId) }, e.serviceName ?? e.serviceId);
  return [
    item("Service", service),
    item("Function", e.functionName),
    item("Attempts", page.attempts),
    item("Created", timeEl(e.createdAt)),
    item("Duration", seconds(e.duration)),
    item("Service revision", e.serviceRevision ?? NONE),
    e.triggerId ? item("Trigger", e.triggerId) : null,
  ];
}

/** The latest error of the log (type, message, traceback), or "No error." */
function errorDetail(e) {
  const latest = e.latestStatus;
  const entry = [...e.statusLog].reverse().find((s) => s.error) ?? (latest.error ? latest : null);
  if (!entry) {
    const text = FAILED.has(latest.status) && latest.message ? latest.message : "No error.";
    return h("p", { class: "muted" }, text);
  }
  const { type, message, traceback } = entry.error;
  return [
    h("p", {}, h("strong", {}, type), ": ", message),
    traceback ? h("pre", { class: "traceback" }, traceback) : null,
  ];
}

function logRow(entry) {
  const percent = entry.percentComplete;
  return h(
    "tr",
    {},
    h("td", {}, timeEl(entry.timestamp)),
    h("td", {}, pill(entry.status)),
    h("td", { class: "num" }, entry.attempt ?? ""),
    h("td", { class: "mono" }, entry.replicaId ?? ""),
    h("td", { class: "num" }, percent === null || percent === undefined ? "" : `${percent} %`),
    h("td", {}, entry.message ?? ""),
  );
}

async function readLogs(page) {
  try {
    const query = { after: page.after };
    const answer = await get(`${page.path}/logs`, query, page.ctx.signal);
    page.after = answer.checkpoint?.after ?? page.after;
    page.lines.push(...answer.logs.map((l) => `${localTime(l.timestamp)}  ${l.message}`));
    page.logs.textContent = page.lines.length ? page.lines.join("\n") : "No log lines.";
  } catch (error) {
    showError(page.slot, error, "Could not read the logs: ");
  }
}

async function rerun(page) {
  const execution = await post(`${page.path}/rerun`);
  page.ctx.go(hashOf("executions", execution?.id ?? page.ctx.id));
}

async function terminate(page) {
  show(page, await post(`${page.path}/terminate`));
}
