// Hash routes: #/services, #/services/<id>, #/executions?<filters>, #/executions/<id>,
// #/triggers. Pure: a hash in, a route out.

const PAGES = {
  services: { list: "services", one: "service" },
  executions: { list: "executions", one: "execution" },
  triggers: { list: "triggers" },
};

export const DEFAULT_HASH = "#/services";

/** {page, id, query} of a location hash; null when the hash names no page. */
export function parseHash(hash) {
  const [path, search = ""] = hash.replace(/^#\/?/, "").split("?", 2);
  const [section, id, ...rest] = path.split("/").filter(Boolean).map(decodeURIComponent);
  const pages = PAGES[section];
  if (!pages || rest.length > 0) return null;
  const page = id === undefined ? pages.list : pages.one;
  if (!page) return null;
  return { page, id: id ?? null, query: new URLSearchParams(search) };
}

/** The hash of a page: hashOf("executions", null, {status: "failed"}). */
export function hashOf(section, id = null, query = {}) {
  const path = id === null ? `#/${section}` : `#/${section}/${encodeURIComponent(id)}`;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value) params.set(key, value);
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

/** The nav section a page belongs to. */
export function sectionOf(page) {
  return Object.keys(PAGES).find((key) => Object.values(PAGES[key]).includes(page)) ?? null;
}
