// Sign-in: paste an API token; it is checked against the API before it is kept.

import { h, fill } from "../dom.js";
import { errorSlot, showError, loaded } from "../ui.js";

/** `onToken(token)` signs in, or throws the API's error, shown under the form. */
export function renderSignin(main, notice, onToken) {
  const slot = errorSlot();
  const input = h("input", {
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    placeholder: "spl_…",
    "aria-label": "API token",
  });
  const submit = h("button", { type: "submit", class: "btn primary" }, "Sign in");
  const form = h(
    "form",
    { "data-testid": "signin", class: "signin" },
    h("h1", {}, "Spool"),
    h("p", { class: "muted" }, "Sign in with an API token. It is kept in this tab only."),
    h("label", {}, "API token", input),
    submit,
    slot,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      await onToken(input.value.trim());
    } catch (error) {
      showError(slot, error);
    } finally {
      submit.disabled = false;
    }
  });
  fill(main, form);
  if (notice) showError(slot, new Error(notice));
  loaded(main);
  input.focus();
}
