// Actions on a service shared by the services table and the service page: pause / resume and
// the roll-back form.

import { h } from "../dom.js";
import { get, post } from "../api.js";
import { actionButton, errorSlot, showError, clearError, setEnabled, submitButton } from "../ui.js";
import { localTime } from "../format.js";

const path = (id, tail = "") => `/services/${encodeURIComponent(id)}${tail}`;

/** Pause and resume buttons; `update(active)` enables the one that applies. */
export function pauseResume({ serviceId, allowed, slot, after }) {
  const call = async (tail) => {
    const service = await post(path(serviceId, tail));
    update(service.active);
    after(service);
  };
  const pause = actionButton({
    label: "Pause",
    action: "pause",
    slot,
    allowed,
    title: "Stop the replicas; executions still queue and run on resume",
    run: () => call("/stop"),
  });
  const resume = actionButton({
    label: "Resume",
    action: "resume",
    slot,
    allowed,
    title: "Start the replicas again (also after a crash-loop deactivation)",
    run: () => call("/resume"),
  });
  const update = (active) => {
    setEnabled(pause, active);
    setEnabled(resume, !active);
  };
  return { pause, resume, update };
}

function revisionLabel(r, currentRevision) {
  const service = r.service ?? {};
  const parts = [
    `revision ${r.revision}`,
    `package ${service.packageRevision ?? "?"}`,
    service.active === false ? "paused" : null,
    localTime(r.createdAt),
    r.creator ? `by ${r.creator}` : null,
    r.revision === currentRevision ? "(current)" : null,
  ];
  return parts.filter(Boolean).join(" · ");
}

/** The roll-back form: a revision picker (GET /revisions) and a submit. */
export function rollbackForm({ serviceId, currentRevision, allowed, onDone, onCancel }) {
  const slot = errorSlot();
  const select = h("select", { name: "revision", "aria-label": "Revision", disabled: true });
  const submit = submitButton("Roll back", allowed);
  submit.disabled = true; // until the revisions are listed
  const cancel = h("button", { type: "button", class: "btn", onclick: onCancel }, "Cancel");
  const form = h(
    "form",
    { class: "inline-form", "data-testid": "rollback" },
    h("label", {}, "Deploy again what ", select, " ran"),
    submit,
    cancel,
    slot,
  );
  get(path(serviceId, "/revisions")).then(
    (revisions) => {
      for (const r of [...revisions].reverse()) {
        const option = h("option", { value: r.revision }, revisionLabel(r, currentRevision));
        option.disabled = r.revision === currentRevision;
        select.append(option);
      }
      select.value = select.querySelector("option:not([disabled])")?.value ?? "";
      select.disabled = false;
      submit.disabled = !allowed || select.value === "";
    },
    (error) => showError(slot, error),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(slot);
    submit.disabled = true;
    try {
      onDone(await post(path(serviceId, "/rollback"), { revision: Number(select.value) }));
    } catch (error) {
      showError(slot, error);
    } finally {
      submit.disabled = !allowed;
    }
  });
  return form;
}
