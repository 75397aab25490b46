// What the tab remembers: the token, the selected project, and who the token belongs to.
// sessionStorage only: closing the tab signs out.

const TOKEN = "spool.token";
const PROJECT = "spool.project";
const ME = "spool.me";
const NOTICE = "spool.signinNotice";

export function token() {
  return sessionStorage.getItem(TOKEN);
}

export function signIn(value) {
  sessionStorage.setItem(TOKEN, value);
  sessionStorage.removeItem(ME);
}

/** Forget the token (and who it was); `notice` is shown on the sign-in page. */
export function signOut(notice = "") {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(ME);
  if (notice) sessionStorage.setItem(NOTICE, notice);
}

/** The message to show on the sign-in page, once. */
export function takeNotice() {
  const notice = sessionStorage.getItem(NOTICE);
  sessionStorage.removeItem(NOTICE);
  return notice;
}

export function projectId() {
  return sessionStorage.getItem(PROJECT);
}

export function selectProject(id) {
  sessionStorage.setItem(PROJECT, id);
}

/** Who the token belongs to (GET /whoami: {kind, id}); null until asked. */
export function me() {
  return loadJson(ME, null);
}

export function rememberMe(who) {
  saveJson(ME, who);
}

/** Per-tab storage of JSON values (the live chart's history). */
export function loadJson(key, fallback) {
  try {
    return JSON.parse(sessionStorage.getItem(key)) ?? fallback;
  } catch {
    return fallback;
  }
}

export function saveJson(key, value) {
  try {
    sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full: the history is a convenience, the page works without it.
  }
}
