// The composition root: sign-in state, the header (nav, project, sign-out), and the router
// that gives each page a fresh <main> and a context it polls and navigates with.

import { h, fill } from "./dom.js";
import { api, get, onUnauthorized } from "./api.js";
import * as session from "./session.js";
import { DEFAULT_HASH, hashOf, parseHash, sectionOf } from "./router.js";
import { poll } from "./poll.js";
import { showError } from "./ui.js";
import { renderSignin } from "./pages/signin.js";
import { renderServices } from "./pages/services.js";
import { renderService } from "./pages/service.js";
import { renderExecutions } from "./pages/executions.js";
import { renderExecution } from "./pages/execution.js";
import { renderTriggers } from "./pages/triggers.js";

const PAGES = {
  services: renderServices,
  service: renderService,
  executions: renderExecutions,
  execution: renderExecution,
  triggers: renderTriggers,
};

const root = document.getElementById("app");
const state = { projects: null, roles: new Map(), header: null, dispose: () => {}, seq: 0 };

/** Drop what was learned with the previous token. */
function forget() {
  state.projects = null;
  state.roles.clear();
}

/** Who the token belongs to ({kind: admin | user | bot, id}), asked once per sign-in. */
async function whoAmI() {
  const known = session.me();
  if (known) return known;
  const who = await get("/whoami");
  session.rememberMe(who);
  return who;
}

/** The caller's role in the project: "admin" for the admin, else its role among the
 * project's members (owner, developer, viewer); null when it cannot be read, in which case
 * the API alone decides. */
async function roleIn(projectId) {
  if (!projectId) return null;
  if (state.roles.has(projectId)) return state.roles.get(projectId);
  let role = null;
  const who = await whoAmI();
  if (who.kind === "admin") {
    role = "admin";
  } else {
    try {
      const members = await get(`/projects/${encodeURIComponent(projectId)}/members`);
      role = members.find((m) => m.memberId === who.id)?.role ?? null;
    } catch (error) {
      if (error.status === 401) throw error;
    }
  }
  state.roles.set(projectId, role);
  return role;
}

async function loadProjects() {
  state.projects = await get("/projects");
  const ids = state.projects.map((p) => p.id);
  if (!ids.includes(session.projectId()) && ids.length > 0) session.selectProject(ids[0]);
}

function leave() {
  session.signOut();
  forget();
  route();
}

function header() {
  const select = h("select", { "data-testid": "project", "aria-label": "Project" });
  select.addEventListener("change", () => {
    session.selectProject(select.value);
    const section = sectionOf(parseHash(location.hash)?.page) ?? "services";
    go(hashOf(section));
  });
  const links = ["services", "executions", "triggers"].map((name) =>
    h("a", { href: `#/${name}`, "data-testid": `nav-${name}`, dataset: { section: name } }, name),
  );
  const role = h("span", { class: "role", "data-testid": "role" });
  const signOut = h(
    "button",
    { type: "button", class: "btn", "data-testid": "sign-out", onclick: leave },
    "Sign out",
  );
  const el = h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: DEFAULT_HASH }, "Spool"),
    h("nav", {}, links),
    h("div", { class: "spacer" }),
    h("label", { class: "project" }, "Project ", select),
    role,
    signOut,
  );
  return { el, select, links, role };
}

function updateHeader(page, role) {
  if (!state.header) state.header = header();
  const { select, links } = state.header;
  fill(select, (state.projects ?? []).map((p) => h("option", { value: p.id }, p.name)));
  select.value = session.projectId() ?? "";
  const section = sectionOf(page);
  for (const link of links) link.classList.toggle("active", link.dataset.section === section);
  state.header.role.textContent = role ? `role: ${role}` : "";
  return state.header.el;
}

function context(main, parsed, role) {
  const stops = [];
  const controller = new AbortController();
  return {
    main,
    id: parsed.id,
    query: parsed.query,
    projectId: session.projectId(),
    role,
    canWrite: role !== "viewer",
    signal: controller.signal,
    poll(tick, ms) {
      if (controller.signal.aborted) return { stop() {}, now() {} }; // the page is gone
      const poller = poll(tick, ms);
      stops.push(poller.stop);
      return poller;
    },
    go,
    dispose() {
      controller.abort();
      stops.forEach((stop) => stop());
    },
  };
}

/** Navigate; the same hash renders the page again. */
export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function showSignin() {
  state.header = null;
  const main = h("main", { "data-page": "signin" });
  fill(root, main);
  renderSignin(main, session.takeNotice(), async (token) => {
    await api("GET", "/projects", { token }); // a bad token fails here, on the form
    session.signIn(token);
    forget();
    await route();
  });
}

async function route() {
  state.dispose();
  state.dispose = () => {};
  const seq = ++state.seq;
  if (!session.token()) return showSignin();
  const parsed = parseHash(location.hash);
  if (!parsed) {
    history.replaceState(null, "", DEFAULT_HASH);
    return route();
  }
  try {
    if (state.projects === null) await loadProjects();
    const role = await roleIn(session.projectId());
    if (seq !== state.seq) return; // another navigation came meanwhile
    const main = h("main", { "data-page": parsed.page });
    document.title = `Spool · ${parsed.page}`;
    fill(root, updateHeader(parsed.page, role), main);
    const ctx = context(main, parsed, role);
    state.dispose = ctx.dispose;
    if (state.projects.length === 0) return noProject(main);
    PAGES[parsed.page](ctx);
  } catch (error) {
    if (error.status !== 401 && seq === state.seq) fatal(parsed.page, error);
  }
}

function noProject(main) {
  fill(main, h("p", { class: "notice" }, "You are not a member of any project yet."));
  main.dataset.loaded = "true";
}

function fatal(page, error) {
  const main = h("main", { "data-page": page });
  fill(root, updateHeader(page, null), main);
  showError(main, error, "Could not load the page: ");
  main.dataset.loaded = "true";
}

onUnauthorized((message) => {
  if (!session.token()) return;
  session.signOut(message);
  forget();
  route();
});

window.addEventListener("hashchange", route);
route();
