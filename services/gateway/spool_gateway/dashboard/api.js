// The one place the dashboard speaks HTTP: /api/v1 with the signed-in token. Every non-2xx
// answer becomes an ApiError carrying the API's message and its field details.

import * as session from "./session.js";

const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, body, fallback) {
    super(messageOf(body) || fallback);
    this.name = "ApiError";
    this.status = status;
    this.code = body?.error ?? null;
    this.details = Array.isArray(body?.details) ? body.details : [];
  }
}

function messageOf(body) {
  if (!body || typeof body !== "object") return "";
  if (typeof body.message === "string") return body.message;
  if (typeof body.detail === "string") return body.detail; // FastAPI's own 404/405
  return "";
}

let unauthorized = () => {};

/** Called with the API's message when a request answers 401 (the token is no good). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

function url(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== null && value !== undefined && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return BASE + path + (text ? `?${text}` : "");
}

async function readBody(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** One API call: `api("GET", "/services", {query: {projectId}})`. Answers the JSON body. */
export async function api(method, path, { query, body, signal, token } = {}) {
  const headers = { Authorization: `Bearer ${token ?? session.token() ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url(path, query), {
    method,
    headers,
    signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await readBody(response);
  if (response.ok) return data;
  const error = new ApiError(response.status, data, `${method} ${path}: HTTP ${response.status}`);
  if (response.status === 401 && token === undefined) unauthorized(error.message);
  throw error;
}

export const get = (path, query, signal) => api("GET", path, { query, signal });
export const post = (path, body, query) => api("POST", path, { body: body ?? {}, query });
export const patch = (path, body) => api("PATCH", path, { body });
