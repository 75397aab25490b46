// Small building blocks every page uses: error slots, action buttons, pills, times, tables.

import { h, fill } from "./dom.js";
import { localTime, tone, NONE } from "./format.js";
import { hashOf } from "./router.js";

export const VIEWER_TITLE = "Your role in this project is Viewer: read only";

/** The text of an error as a user should read it (the API's own message, verbatim). */
function errorText(error) {
  if (error?.status) return `${error.message} (HTTP ${error.status})`;
  return error?.message ?? String(error);
}

/** A place for an error next to what can fail; empty (and without an error element) until
 * showError puts one in. */
export function errorSlot(className = "") {
  return h("div", { class: `error-slot ${className}`.trim() });
}

/** Put `error` (with an optional lead-in such as "Pause failed: ") into `slot`. */
export function showError(slot, error, lead = "") {
  if (error?.name === "AbortError") return;
  const text = lead + errorText(error);
  if (slot.textContent === text) return; // polling shows the same error again: leave it be
  fill(slot, h("div", { class: "error", role: "alert", "data-testid": "error" }, text));
}

export function clearError(slot) {
  slot.replaceChildren();
}

/** A button that runs `run()` on click, disabled meanwhile, with failures in `slot`.
 * `allowed: false` renders it disabled for a Viewer. */
export function actionButton({ label, action, slot, run, allowed = true, title, kind = "" }) {
  const button = h(
    "button",
    {
      type: "button",
      class: `btn ${kind}`.trim(),
      "data-action": action,
      title: allowed ? title : VIEWER_TITLE,
      dataset: { allowed: String(allowed), off: "false", busy: "false" },
    },
    label,
  );
  button.addEventListener("click", async () => {
    button.dataset.busy = "true";
    refresh(button);
    clearError(slot);
    try {
      await run();
    } catch (error) {
      showError(slot, error, `${label} failed: `);
    } finally {
      button.dataset.busy = "false";
      refresh(button);
    }
  });
  refresh(button);
  return button;
}

function refresh(button) {
  const { allowed, off, busy } = button.dataset;
  button.disabled = allowed === "false" || off === "true" || busy === "true";
}

/** A form's submit button; disabled for a Viewer when the form writes. */
export function submitButton(label, allowed = true) {
  const title = allowed ? null : VIEWER_TITLE;
  return h("button", { type: "submit", class: "btn primary", disabled: !allowed, title }, label);
}

/** Enable or disable an action button as the state allows (a Viewer's stay disabled). */
export function setEnabled(button, enabled) {
  button.dataset.off = enabled ? "false" : "true";
  refresh(button);
}

export function pill(status, testid) {
  return h("span", { class: `pill ${tone(status)}`, "data-testid": testid }, status ?? NONE);
}

/** A time in local time, its ISO value in the title. */
export function timeEl(iso) {
  if (!iso) return NONE;
  return h("time", { datetime: iso, title: iso }, localTime(iso));
}

/** A table with a header row; `numeric` names the columns that are right-aligned. */
export function table(columns, { numeric = [], testid } = {}) {
  const head = columns.map((c) => h("th", { class: numeric.includes(c) ? "num" : null }, c));
  const body = h("tbody");
  const thead = h("thead", {}, h("tr", {}, head));
  const el = h("table", { class: "grid", "data-testid": testid }, thead, body);
  return { el, body };
}

export function emptyRow(columns, text) {
  return h("tr", { class: "empty" }, h("td", { colspan: columns }, text));
}

/** A page's title row. */
export function pageHead(title, ...rest) {
  return h("div", { class: "page-head" }, h("h1", {}, title), ...rest);
}

/** A link to an execution's page, its id shortened. */
export function executionLink(id) {
  return h("a", { href: hashOf("executions", id), title: id, class: "mono" }, id.slice(0, 12));
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

/** Mark the page's first data as rendered (what the browser tests wait for). */
export function loaded(main) {
  main.dataset.loaded = "true";
}
