// The console's shell: login state, the caller (GET /me), the tenant picker, the nav and
// hash routing (#/tree, #/device/12). Pages are modules listed in pages/index.js; each renders
// into <main> and returns a cleanup function (close streams, stop timers).

import { ApiError, api, clearErrors, session } from "./api.js";
import { clear, h } from "./dom.js";
import { renderLogin } from "./pages/login.js";
import { PAGES } from "./pages/index.js";

const RANK = { viewer: 0, operator: 1, admin: 2 };
const TENANT_KEY = "millnet.tenant";

/** What pages receive: the caller, the tenant in view, role checks. */
export const ctx = {
  me: null,
  get tenantId() {
    const own = this.me && this.me.tenant_id;
    if (own) return own;
    const chosen = Number(sessionStorage.getItem(TENANT_KEY));
    const tenants = (this.me && this.me.tenants) || [];
    return tenants.some((t) => t.id === chosen) ? chosen : (tenants[0] || {}).id || null;
  },
  /** The tenant query of collection requests (a node-wide token must name one). */
  get tenantQuery() {
    return this.me && this.me.tenant_id ? {} : { tenant_id: this.tenantId };
  },
  can(role) { return !!this.me && RANK[this.me.role] >= RANK[role]; },
  serves(area) { return !area || (!!this.me && this.me.areas.includes(area)); },
};

let cleanup = null;
const main = () => document.getElementById("main");

function parseHash() {
  const parts = window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  return { name: parts[0] || "tree", args: parts.slice(1).map(decodeURIComponent) };
}

function renderNav() {
  const list = clear(document.getElementById("nav-list"));
  const current = parseHash().name;
  for (const page of PAGES) {
    if (!page.nav || !ctx.serves(page.area)) continue;
    list.append(h("li", {}, h("a", {
      href: `#/${page.name}`, "aria-current": page.name === current ? "page" : null,
    }, page.title)));
  }
  document.getElementById("nav").hidden = false;
}

function renderWho() {
  const who = ctx.me;
  const scope = who.tenant_id ? (who.tenants[0] || {}).name : "node-wide";
  document.getElementById("who-text").textContent = `${who.token_name} · ${who.role} · ${scope}`;
  const box = document.getElementById("tenant-box");
  const select = clear(document.getElementById("tenant-select"));
  box.hidden = !!who.tenant_id || who.tenants.length === 0;
  for (const t of who.tenants) {
    select.append(h("option", { value: t.id, selected: t.id === ctx.tenantId },
                    t.display_name || t.name));
  }
  document.getElementById("who").hidden = false;
}

// route() calls overlap (a hash change while the previous page still loads, a reconnection
// that re-renders): each renders into a view of its own, and only the latest one stays in
// <main>; an older page that finishes late is cleaned up at once.
let routeSeq = 0;

async function route() {
  const seq = ++routeSeq;
  if (cleanup) cleanup();
  cleanup = null;
  const target = h("div", { class: "view" });
  clear(main()).append(target);
  if (!session.token) {
    showLogin("");
    return;
  }
  if (!ctx.me) {
    let me;
    try {
      me = await api("/me");
    } catch (err) {
      if (err.status === 401 || seq !== routeSeq) return;  // back at the login page, or moved on
      target.append(h("p", { class: "muted", text: "The node cannot be reached; retrying." }));
      return;
    }
    if (seq !== routeSeq) return;
    ctx.me = me;
    renderWho();
  }
  renderNav();
  const { name, args } = parseHash();
  const page = PAGES.find((p) => p.name === name && ctx.serves(p.area));
  const home = PAGES.find((p) => p.nav && ctx.serves(p.area));
  if (!page && name === "tree" && home) {  // a node without the platform (national)
    window.location.replace(`#/${home.name}`);
    return;
  }
  if (!page) {
    target.append(h("h1", {}, "Not found"),
                  h("p", {}, "No page ", h("code", {}, name), " on this console."));
    return;
  }
  document.title = `${page.title} · millnet`;
  try {
    const done = (await page.render(target, args, ctx)) || null;
    if (seq !== routeSeq) {  // a newer page took <main> meanwhile
      if (done) done();
      return;
    }
    cleanup = done;
  } catch (err) {
    // API errors are already in the error area, and an unreachable node (status 0) has the
    // banner, which reloads the page once the node is back; others are bugs worth seeing.
    if (!(err instanceof ApiError)) throw err;
    if (err.status === 0) {
      target.append(h("p", { class: "muted", text: "The node cannot be reached; retrying." }));
    }
  }
}

function showLogin(message) {
  if (cleanup) cleanup();
  cleanup = null;
  ctx.me = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  document.title = "Log in · millnet";
  renderLogin(clear(main()), message, () => {
    clearErrors();
    if (!window.location.hash || window.location.hash === "#/login") {
      window.location.hash = "#/tree";
    } else {
      route();
    }
  });
}

session.onUnauthenticated = (detail) => {
  showLogin(`You were logged out: ${detail}. Log in again.`);
};

document.getElementById("logout").addEventListener("click", () => {
  session.token = null;
  clearErrors();
  showLogin("");
});

document.getElementById("tenant-select").addEventListener("change", (event) => {
  sessionStorage.setItem(TENANT_KEY, event.target.value);
  window.location.hash = "#/tree";
  route();
});

window.addEventListener("hashchange", () => {
  clearErrors();
  route();
  main().focus();
});
// Back from a lost connection: the page reloads what it shows.
window.addEventListener("millnet:reconnected", () => {
  if (session.token && !document.querySelector("[data-live]")) route();
});

route();
