// How numbers, durations and times read on every page. Pure functions of their arguments.

export const NONE = "—";

/** Seconds as "0.12 s", "4.5 s", "73 s", "12 min"; "—" for null. */
export function seconds(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return NONE;
  if (value >= 600) return `${(value / 60).toFixed(0)} min`;
  if (value >= 100) return `${value.toFixed(0)} s`;
  if (value >= 10) return `${value.toFixed(1)} s`;
  return `${value.toFixed(2)} s`;
}

/** A count or rate: integers as they are, others with `digits` decimals; "—" for null. */
export function number(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return NONE;
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

/** An ISO time in the browser's local time ("2024-05-01 14:03:07"). */
export function localTime(iso) {
  if (!iso) return NONE;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** "14:03" of a millisecond timestamp, for chart axes. */
export function clock(ms) {
  const date = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** An ISO UTC time as a datetime-local value (local time, to the minute). */
export function toLocalInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

/** A datetime-local value (local time) as ISO UTC; "" stays "". */
export function fromLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

/** Which colour a service status (Active...) or an execution status (success...) gets. */
export function tone(status) {
  const tones = {
    Active: "ok",
    Initializing: "warn",
    Error: "bad",
    Inactive: "off",
    success: "ok",
    "in-progress": "info",
    created: "warn",
    rerun: "warn",
    failed: "bad",
    "system-failure": "bad",
    timeout: "bad",
    terminated: "off",
    aborted: "off",
    canceled: "off",
  };
  return tones[status] ?? "off";
}

export const EXECUTION_STATUSES = [
  "created",
  "in-progress",
  "success",
  "failed",
  "terminated",
  "aborted",
  "canceled",
  "system-failure",
  "timeout",
  "rerun",
];

/** The statuses an execution ends in (it may still be rerun from them). */
export const TERMINAL = new Set(
  EXECUTION_STATUSES.filter((s) => !["created", "in-progress", "rerun"].includes(s)),
);
