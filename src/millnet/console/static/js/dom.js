// Building the DOM without HTML strings: every name and value a user typed goes in as text
// (a text node or textContent), never as HTML markup, so `<script>` stays a name.

/**
 * h("a", {href: "#/x", class: "link"}, "text", child) -> an element.
 * Attributes: `class`, `text` (textContent), `on<event>` (listeners), `dataset`, booleans
 * (true sets the attribute, false/null/undefined leaves it out), anything else setAttribute.
 * Children: strings and numbers become text nodes; null/undefined/false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** A number for people: at most 4 significant decimals, no exponent for usual magnitudes. */
export function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  return value.toLocaleString("en", { maximumFractionDigits: Math.abs(value) >= 100 ? 1 : 3 });
}

export function time(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
}

let ids = 0;
/** A unique id for label/for pairs. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}
