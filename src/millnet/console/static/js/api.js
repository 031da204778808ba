// Every call to the node's API goes through here: the token as a bearer header, API errors
// shown in the error area (status, code, the API's detail), a 401 back to the login page, and
// the connection-lost banner while the node cannot be reached (it goes away by itself once a
// probe of /healthz answers again).

import { h } from "./dom.js";

const TOKEN_KEY = "millnet.token";
const API = "/api/v1";
const PROBE_MS = 1500;

export class ApiError extends Error {
  constructor(status, code, detail, field) {
    super(status ? `${status} ${code}: ${detail}` : detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.field = field;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  onUnauthenticated: () => {},
};

// ---- errors -------------------------------------------------------------------------------

const MAX_ERRORS = 5;

/** Show an error in the page's error area (newest first, each dismissable). */
export function showError(message) {
  const area = document.getElementById("errors");
  const newest = area.querySelector(".error-text");
  if (newest && newest.textContent === message) return;  // a page polling the same failure
  const item = h("div", { class: "error", role: "alert" },
    h("span", { class: "error-text", text: message }),
    h("button", {
      type: "button", class: "dismiss", "aria-label": "Dismiss error",
      onclick: () => item.remove(),
    }, "×"));
  area.prepend(item);
  while (area.children.length > MAX_ERRORS) area.lastElementChild.remove();
}

export function clearErrors() {
  document.getElementById("errors").replaceChildren();
}

// ---- connection ---------------------------------------------------------------------------

const lost = new Set();
let probing = null;

/** `source` ("api", "stream") cannot reach the node: show the banner until it can. */
export function connectionLost(source) {
  lost.add(source);
  document.getElementById("offline").hidden = false;
  if (source === "api" && probing === null) probing = setTimeout(probe, PROBE_MS);
}

export function connectionRestored(source) {
  const was = lost.size > 0;
  lost.delete(source);
  if (lost.size === 0) {
    document.getElementById("offline").hidden = true;
    if (was) window.dispatchEvent(new CustomEvent("millnet:reconnected"));
  }
}

async function probe() {
  probing = null;
  try {
    const resp = await fetch("/healthz", { cache: "no-store" });
    if (resp.status < 500 || resp.status === 503) {  // answering, even degraded
      connectionRestored("api");
      return;
    }
  } catch (err) {
    // still unreachable: probed again below
  }
  probing = setTimeout(probe, PROBE_MS);
}

// ---- calls --------------------------------------------------------------------------------

export function authHeaders() {
  return { Authorization: `Bearer ${session.token}` };
}

async function errorOf(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch (err) {
    body = null;
  }
  if (body && typeof body === "object" && body.error) {
    return new ApiError(resp.status, body.error, body.detail || "", body.field || null);
  }
  return new ApiError(resp.status, "http_error", resp.statusText || "request failed", null);
}

/**
 * Call the API: `api("/assets", {query: {tenant_id: 1}})`, `api(path, {method, body})`.
 * Resolves to the JSON answer (null for 204). API errors are shown in the error area and
 * rethrown (pass `show: false` where the caller shows them next to a form field itself).
 */
export async function api(path, { method = "GET", body, query, show = true } = {}) {
  const url = new URL(API + path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === null || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v);
  }
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    connectionLost("api");
    throw new ApiError(0, "unreachable", "the node cannot be reached", null);
  }
  connectionRestored("api");
  if (resp.status === 401) {
    const error = await errorOf(resp);
    session.token = null;
    session.onUnauthenticated(error.detail || "your token is not valid");
    throw error;
  }
  if (!resp.ok) {
    const error = await errorOf(resp);
    if (show) showError(`${method} ${path}: ${error.message}`);
    throw error;
  }
  return resp.status === 204 ? null : resp.json();
}
