// Advisories and rectification orders of the monitoring federation (node-wide tokens):
// advisories issued here or received from the parent, orders with each enterprise's state
// (issued, received, acknowledged, in progress, done; overdue past the deadline). One order
// (#/orders/RO-1) shows its audit trail; on an enterprise node an operator reports progress.

import { api, ApiError } from "../api.js";
import { append, clear, h } from "../dom.js";
import { advisoryForm, orderForm } from "./issue.js";

const REFRESH_MS = 15_000;
const NEXT = { issued: ["received", "acknowledged"], received: ["acknowledged"],
               acknowledged: ["in_progress", "done"], in_progress: ["done"], done: [] };
const LABEL = { in_progress: "in progress" };

function when(iso) {
  return iso ? new Date(iso).toLocaleString("en-GB", { hour12: false }) : "–";
}

function stateChip(s) {
  return [h("span", { class: `ostate ostate-${s.state}`, text: LABEL[s.state] || s.state }),
          s.overdue ? h("span", { class: "ostate ostate-overdue", text: "overdue" }) : null];
}

export async function render(main, args, ctx) {
  if (ctx.me.tenant_id) {
    main.append(h("h1", {}, "Advisories and orders"),
                h("p", { class: "muted" }, "These span enterprises: log in with a node-wide token."));
    return null;
  }
  if (args.length) return renderOrder(main, args[0], ctx);
  const advisories = h("div", { class: "table-wrap" });
  const orders = h("div", { class: "table-wrap" });
  main.append(h("h1", {}, "Advisories and orders"),
    h("section", { "aria-labelledby": "orders-h", dataset: { live: "orders" } },
      h("h2", { id: "orders-h" }, "Rectification orders"), orders),
    h("section", { "aria-labelledby": "advisories-h" },
      h("h2", { id: "advisories-h" }, "Advisories"), advisories));
  let timer = null;
  let stopped = false;
  if (ctx.can("admin") && ["national", "secondary"].includes(ctx.me.node_role)) {
    main.append(h("section", { "aria-labelledby": "issue-h", class: "issue" },
      h("h2", { id: "issue-h" }, "Issue"),
      h("details", {}, h("summary", {}, "Issue an advisory"), advisoryForm(() => refresh())),
      h("details", {}, h("summary", {}, "Issue a rectification order"),
        orderForm(() => refresh()))));
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const [a, o] = await Promise.all([api("/federation/advisories"),
                                        api("/federation/orders")]);
      drawAdvisories(a);
      drawOrders(o);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;  // API errors and lost connections are shown
    } finally {
      if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function drawAdvisories(list) {
    clear(advisories).append(list.length ? h("table", { class: "data advisories" },
      h("thead", {}, h("tr", {}, ["Advisory", "Severity", "Title", "Published", "Issuer",
        "Regions", "Affected"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, list.map((a) => h("tr", {},
        h("td", { "data-label": "Advisory", text: a.id }),
        h("td", { "data-label": "Severity" }, h("span", { class: `prio prio-${a.severity}`,
                                                          text: a.severity })),
        h("td", { "data-label": "Title", text: a.title }),
        h("td", { "data-label": "Published", text: when(a.published) }),
        h("td", { "data-label": "Issuer", text: a.issuer || "–" }),
        h("td", { "data-label": "Regions", text: (a.regions || []).join(", ") || "all" }),
        h("td", { "data-label": "Affected",
                  text: (a.affected || []).map((m) => m.cpe).join(", ") || "–" })))))
      : h("p", { class: "muted" }, "No advisories."));
  }

  function drawOrders(list) {
    clear(orders).append(list.length ? h("table", { class: "data orders" },
      h("thead", {}, h("tr", {}, ["Order", "Title", "Issuer", "Deadline", "Enterprises"].map(
        (c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, list.map((o) => h("tr", { dataset: { order: o.id } },
        h("td", { "data-label": "Order" }, h("a", { href: `#/orders/${encodeURIComponent(o.id)}`,
                                                    text: o.id })),
        h("td", { "data-label": "Title", text: o.title }),
        h("td", { "data-label": "Issuer", text: o.issuer }),
        h("td", { "data-label": "Deadline", text: when(o.deadline) }),
        h("td", { "data-label": "Enterprises" }, h("ul", { class: "targets" },
          o.status.map((s) => h("li", {}, h("span", { class: "target", text: s.target }), " ",
                                stateChip(s)))))))))
      : h("p", { class: "muted" }, "No orders."));
  }

  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function renderOrder(main, id, ctx) {
  let order;
  try {
    order = await api(`/federation/orders/${encodeURIComponent(id)}`);
  } catch (err) {
    main.append(h("h1", {}, "Order"), h("p", { class: "muted" }, "This order could not be read."));
    return null;
  }
  append(main, [
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "#/orders" }, "Advisories and orders"), " / ", h("span", { text: order.id })),
    h("h1", { text: `${order.id}: ${order.title}` }),
    h("dl", { class: "facts" },
      h("dt", {}, "Action"), h("dd", { text: order.action }),
      h("dt", {}, "Deadline"), h("dd", { text: when(order.deadline) }),
      h("dt", {}, "Issuer"), h("dd", { text: order.issuer }),
      h("dt", {}, "Advisory"), h("dd", { text: order.advisory_id || "–" })),
    h("h2", {}, "Enterprises"),
    h("div", { class: "table-wrap" }, h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["Enterprise", "State", "Updated"].map(
        (c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, order.status.map((s) => h("tr", {},
        h("td", { "data-label": "Enterprise", text: s.target }),
        h("td", { "data-label": "State" }, stateChip(s)),
        h("td", { "data-label": "Updated", text: when(s.updated_at) })))))),
    progressForm(order, ctx),
    h("h2", {}, "Audit trail"),
    h("ol", { class: "audit" }, (order.audit || []).map((e) => h("li", {},
      h("span", { text: when(e.at) }), " ", h("strong", { text: e.target }), ": ",
      `${e.from || "–"} → ${e.to}`, " by ", h("span", { text: e.actor }),
      e.comment ? h("q", { text: e.comment }) : null)))]);
  return null;
}

/** An enterprise node's operator reports its progress (the node answers for itself). */
function progressForm(order, ctx) {
  if (ctx.me.node_role !== "enterprise" || !ctx.can("operator") || order.status.length !== 1) {
    return null;
  }
  const current = order.status[0].state;
  const next = NEXT[current] || [];
  if (!next.length) return null;
  const select = h("select", { id: "order-state", name: "state" },
    next.map((s) => h("option", { value: s }, LABEL[s] || s)));
  const comment = h("input", { id: "order-comment", name: "comment", type: "text",
                               maxlength: 2000, autocomplete: "off" });
  const error = h("p", { class: "field-error", id: "order-error", role: "alert" });
  const form = h("form", { class: "stack-form", novalidate: true, "aria-label": "Report progress" },
    h("div", { class: "field" }, h("label", { for: "order-state" }, "New state"), select),
    h("div", { class: "field" }, h("label", { for: "order-comment" }, "Comment"), comment),
    h("button", { type: "submit" }, "Report"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await api(`/federation/orders/${encodeURIComponent(order.id)}/status`, {
        method: "POST", show: false, body: { state: select.value, comment: comment.value.trim() } });
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : String(err);
    }
  });
  return h("section", { "aria-label": "Report progress" }, h("h2", {}, "Report progress"), form);
}
