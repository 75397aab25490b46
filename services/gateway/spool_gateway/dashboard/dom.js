// The one way pages build DOM: h(tag, attrs, ...children). Text always goes in as text nodes
// (textContent), never as HTML, so nothing the API answers can become markup or script.

const SVG_NS = "http://www.w3.org/2000/svg";
const FORBIDDEN = new Set(["style", "innerHTML", "outerHTML", "srcdoc"]);

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (FORBIDDEN.has(key)) throw new Error(`h(): '${key}' is not allowed (CSP / XSS)`);
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element with attributes (on<event> functions become listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

/** Replace every child of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  appendAll(el, children);
  return el;
}
