// Alarms (ISA-18.2): the list with filters (state, priority, asset), refreshed every few
// seconds; operators acknowledge (with a comment), shelve (for a duration, checked next to its
// field) and unshelve. The EEMUA 191 figures of the last 24 h sit on top (GET
// /alarms/performance). A viewer sees the same list without action buttons.

import { api, ApiError } from "../api.js";
import { clear, fmt, h, uid } from "../dom.js";

const REFRESH_MS = 3000;
const OPEN_STATES = ["unack_active", "acked_active", "rtn_unack", "shelved",
                     "suppressed_by_design", "out_of_service"];
const STATE_LABEL = {
  normal: "normal", unack_active: "active, unacknowledged", acked_active: "active, acknowledged",
  rtn_unack: "cleared, unacknowledged", shelved: "shelved",
  suppressed_by_design: "suppressed", out_of_service: "out of service",
};
const PRIORITIES = ["critical", "high", "medium", "low"];
const MAX_SHELVE_S = 30 * 86400;
const UNIT_S = { s: 1, m: 60, h: 3600, d: 86400 };

/** "30m", "2h", "90s", "1d" or a bare number of minutes -> seconds, or an error message. */
export function parseDuration(text) {
  const raw = text.trim().toLowerCase();
  if (!raw) return { error: "Enter a duration, e.g. 30m, 2h or 1d." };
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$/.exec(raw);
  if (!m) return { error: "A duration is a number with s, m, h or d, e.g. 30m or 2h." };
  const seconds = Number(m[1]) * UNIT_S[m[2] || "m"];
  if (!(seconds > 0)) return { error: "A duration must be above zero." };
  if (seconds > MAX_SHELVE_S) return { error: "A shelve lasts at most 30 days." };
  return { seconds };
}

function when(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString("en-GB", { hour12: false });
}

function assetPaths(roots) {
  const paths = new Map();  // id -> {path, ids (itself and below)}
  function walk(node, prefix) {
    const path = prefix ? `${prefix}/${node.name}` : node.name;
    const ids = [node.id];
    for (const child of node.children || []) ids.push(...walk(child, path));
    paths.set(node.id, { path, kind: node.kind, ids });
    return ids;
  }
  for (const root of roots) walk(root, "");
  return paths;
}

export async function render(main, _args, ctx) {
  const operator = ctx.can("operator");
  const tree = await api("/assets", { query: ctx.tenantQuery });
  const assets = assetPaths(tree.roots);

  const summary = h("section", { class: "alarm-summary", "aria-labelledby": "eemua-h" });
  const stateSel = h("select", { id: "alarm-state", name: "state" },
    h("option", { value: "open" }, "Not normal"),
    h("option", { value: "" }, "All"),
    Object.entries(STATE_LABEL).map(([value, label]) => h("option", { value }, label)));
  const prioSel = h("select", { id: "alarm-priority", name: "priority" },
    h("option", { value: "" }, "All"), PRIORITIES.map((p) => h("option", { value: p }, p)));
  const assetSel = h("select", { id: "alarm-asset", name: "asset" },
    h("option", { value: "" }, "All"),
    [...assets.entries()].map(([id, a]) => h("option", { value: id }, a.path)));
  const filters = h("form", { class: "filters", "aria-label": "Filter alarms" },
    h("div", { class: "field" }, h("label", { for: "alarm-state" }, "State"), stateSel),
    h("div", { class: "field" }, h("label", { for: "alarm-priority" }, "Priority"), prioSel),
    h("div", { class: "field" }, h("label", { for: "alarm-asset" }, "Asset"), assetSel));
  const panel = h("div", { class: "action-panel", id: "alarm-action" });
  const count = h("p", { class: "muted", role: "status", "aria-live": "polite", tabindex: -1 });
  const table = h("div", { class: "table-wrap" });
  main.append(h("h1", {}, "Alarms"), summary, filters, panel, count,
              h("section", { "aria-label": "Alarm list", dataset: { live: "alarms" } }, table));

  let timer = null;
  let stopped = false;
  let latest = [];

  async function loadSummary() {
    try {
      const f = await api("/alarms/performance", { query: ctx.tenantQuery, show: false });
      clear(summary).append(
        h("h2", { id: "eemua-h" }, "Last 24 hours (EEMUA 191)"),
        h("dl", { class: "figures" },
          figure("Annunciated", fmt(f.annunciated)),
          figure("Per 10 min (average)", fmt(f.average_per_10min)),
          figure("Per 10 min (peak)", fmt(f.peak_per_10min)),
          figure("Assessment", f.assessment),
          figure("Standing", fmt(f.standing.length)),
          figure("Chattering", fmt(f.chattering.length))));
    } catch (err) {
      clear(summary);  // the figures are extra; the list below still shows
    }
  }

  function query() {
    const q = { ...ctx.tenantQuery, limit: 200 };
    if (stateSel.value === "open") q.state = OPEN_STATES;
    else if (stateSel.value) q.state = stateSel.value;
    if (prioSel.value) q.priority = prioSel.value;
    if (assetSel.value) q.asset_id = assets.get(Number(assetSel.value)).ids.slice(0, 200);
    return q;
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      latest = await api("/alarms", { query: query() });
      draw(latest);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;  // API errors and lost connections are shown
    } finally {
      if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function draw(alarms) {
    count.textContent = `${alarms.length} alarm${alarms.length === 1 ? "" : "s"}`;
    const focused = document.activeElement && table.contains(document.activeElement)
      ? document.activeElement.dataset.key : null;
    if (!alarms.length) {
      clear(table).append(h("p", { class: "muted" }, "No alarms match."));
      return;
    }
    clear(table).append(h("table", { class: "data alarms" },
      h("caption", { class: "sr-only" }, "Alarms, newest first"),
      h("thead", {}, h("tr", {},
        ["Priority", "State", "Rule", "Asset", "Message", "Value", "Activated", "By"]
          .map((c) => h("th", { scope: "col" }, c)),
        operator ? h("th", { scope: "col" }, "Actions") : null)),
      h("tbody", {}, alarms.map(row))));
    if (focused) {
      const again = table.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  function row(a) {
    const asset = assets.get(a.asset_id);
    return h("tr", { dataset: { alarm: a.id, state: a.state } },
      h("td", { "data-label": "Priority" },
        h("span", { class: `prio prio-${a.priority}`, text: a.priority })),
      h("td", { "data-label": "State", class: "alarm-state" },
        h("span", { class: `astate astate-${a.state}`, text: STATE_LABEL[a.state] || a.state })),
      h("td", { "data-label": "Rule", text: a.rule_name }),
      h("td", { "data-label": "Asset" },
        asset && asset.kind === "device"
          ? h("a", { href: `#/device/${a.asset_id}`, text: asset.path })
          : (asset ? asset.path : `asset ${a.asset_id}`)),
      h("td", { "data-label": "Message", text: a.message }),
      h("td", { "data-label": "Value", class: "num", text: fmt(a.value) }),
      h("td", { "data-label": "Activated", text: when(a.last_activated_at) }),
      h("td", { "data-label": "By", text: a.acked_by || a.shelved_by || "" }),
      operator ? h("td", { "data-label": "Actions", class: "actions" }, actions(a)) : null);
  }

  function actions(a) {
    const buttons = [];
    const name = `${a.rule_name} on ${(assets.get(a.asset_id) || {}).path || a.asset_id}`;
    if (a.state === "unack_active" || a.state === "rtn_unack") {
      buttons.push(h("button", { type: "button", dataset: { key: `acknowledge${a.id}` },
                                 "aria-label": `Acknowledge ${name}`,
                                 onclick: () => openAction("acknowledge", a, name) },
                     "Acknowledge"));
    }
    if (a.state === "shelved") {
      buttons.push(h("button", { type: "button", class: "secondary",
                                 dataset: { key: `unshelve${a.id}` },
                                 "aria-label": `Unshelve ${name}`,
                                 onclick: () => openAction("unshelve", a, name) }, "Unshelve"));
    } else if (a.state !== "out_of_service" && a.state !== "normal") {
      buttons.push(h("button", { type: "button", class: "secondary",
                                 dataset: { key: `shelve${a.id}` },
                                 "aria-label": `Shelve ${name}`,
                                 onclick: () => openAction("shelve", a, name) }, "Shelve"));
    }
    return buttons;
  }

  /** The form of one action, above the list (the list refreshes without disturbing it). */
  function openAction(kind, alarm, name) {
    const commentId = uid("comment");
    const comment = h("input", { id: commentId, name: "comment", type: "text",
                                 maxlength: 1000, autocomplete: "off" });
    const formError = h("p", { class: "field-error", id: "action-error", role: "alert" });
    let duration = null;
    let durationError = null;
    const fields = [];
    if (kind === "shelve") {
      duration = h("input", { id: "shelve-duration", name: "duration", type: "text",
                              inputmode: "text", value: "30m", autocomplete: "off",
                              "aria-describedby": "shelve-duration-help shelve-duration-error" });
      durationError = h("p", { class: "field-error", id: "shelve-duration-error",
                               role: "alert" });
      fields.push(h("div", { class: "field" },
        h("label", { for: "shelve-duration" }, "Shelve for"), duration,
        h("p", { class: "help", id: "shelve-duration-help" },
          "A number with s, m, h or d (minutes without a unit)."),
        durationError));
    }
    fields.push(h("div", { class: "field" },
      h("label", { for: commentId }, kind === "acknowledge" ? "Comment (optional)"
                                                            : "Comment"), comment));
    const title = { acknowledge: "Acknowledge", shelve: "Shelve", unshelve: "Unshelve" }[kind];
    const form = h("form", { class: "action-form", novalidate: true,
                             "aria-labelledby": "action-h" },
      h("h2", { id: "action-h" }, `${title}: `, h("span", { text: name })),
      fields,
      h("div", { class: "buttons" },
        h("button", { type: "submit" }, title),
        h("button", { type: "button", class: "secondary", onclick: close }, "Cancel")),
      formError);

    function close() {
      clear(panel);
      const back = table.querySelector(`[data-key="${kind}${alarm.id}"]`);
      if (back) back.focus();
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      formError.textContent = "";
      const body = { comment: comment.value.trim() || null };
      if (kind === "shelve") {
        durationError.textContent = "";
        duration.removeAttribute("aria-invalid");
        const parsed = parseDuration(duration.value);
        if (parsed.error) {
          durationError.textContent = parsed.error;
          duration.setAttribute("aria-invalid", "true");
          duration.focus();
          return;
        }
        body.duration_s = parsed.seconds;
      }
      try {
        await api(`/alarms/${alarm.id}/${kind}`, { method: "POST", body, show: false });
        clear(panel);
        await refresh();
        count.textContent += ` · ${title.toLowerCase()}d ${name}`;
        count.focus();  // the form is gone: say what happened where the focus lands
      } catch (err) {
        const text = err instanceof ApiError ? err.message : String(err);
        if (kind === "shelve" && err.field === "duration_s") {
          durationError.textContent = text;
          duration.setAttribute("aria-invalid", "true");
        } else {
          formError.textContent = text;
        }
      }
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
    });
    clear(panel).append(form);
    (duration || comment).focus();
  }

  for (const sel of [stateSel, prioSel, assetSel]) sel.addEventListener("change", refresh);
  filters.addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  await loadSummary();
  await refresh();
  const summaryTimer = setInterval(loadSummary, 60_000);
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearInterval(summaryTimer);
  };
}

function figure(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", { text: value }));
}
