// The situation under this node (secondary and national nodes, node-wide tokens): totals,
// tables by province, sector and severity with bar charts, the timeline, the most affected
// products and the orders not yet acknowledged or overdue (GET /federation/situation).

import { api, ApiError } from "../api.js";
import { clear, fmt, h } from "../dom.js";

const REFRESH_MS = 15_000;
const PERIODS = [["1", "Last 24 hours", "1h"], ["7", "Last 7 days", "6h"],
                 ["30", "Last 30 days", "1d"]];
const COLUMNS = [["enterprises", "Enterprises"], ["assets", "Assets"], ["events", "Events"],
                 ["incidents", "Incidents"], ["incidents_open", "Open incidents"]];
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) {
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

/** A horizontal bar chart of `items` ([label, value]) as SVG: attributes only, no style. */
export function barChart(title, items) {
  const rowH = 26;
  const labelW = 150;
  const width = 480;
  const max = Math.max(1, ...items.map(([, v]) => v));
  const height = Math.max(1, items.length) * rowH + 8;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "bars", role: "img",
                             "aria-label": `${title}: ${items.map(([l, v]) => `${l} ${v}`)
                               .join(", ") || "nothing"}` },
    svg("title", {}, title));
  items.forEach(([label, value], i) => {
    const y = i * rowH + 4;
    const w = Math.max(value ? 2 : 0, ((width - labelW - 50) * value) / max);
    const shown = label.length > 22 ? `${label.slice(0, 21)}…` : label;
    chart.append(
      svg("text", { x: labelW - 6, y: y + 16, "text-anchor": "end", class: "bar-label" }, shown),
      svg("rect", { x: labelW, y: y + 3, width: w.toFixed(1), height: rowH - 8, rx: 2,
                    class: "bar" }),
      svg("text", { x: labelW + w + 6, y: y + 16, class: "bar-value" }, String(value)));
  });
  return h("figure", { class: "chart-figure" }, chart, h("figcaption", {}, title));
}

function table(caption, keyLabel, rows, key) {
  return h("div", { class: "table-wrap" }, h("table", { class: "data" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, keyLabel),
      COLUMNS.map(([, label]) => h("th", { scope: "col", class: "num" }, label)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", {},
      h("th", { scope: "row", "data-label": keyLabel, text: key(r) }),
      COLUMNS.map(([k, label]) => h("td", { class: "num", "data-label": label,
                                            text: fmt(r[k]) })))) :
      h("tr", {}, h("td", { colspan: COLUMNS.length + 1, class: "muted" }, "Nothing reported.")))));
}

export async function render(main, _args, ctx) {
  const period = h("select", { id: "sit-period", name: "period" },
    PERIODS.map(([v, label]) => h("option", { value: v }, label)));
  const region = h("input", { id: "sit-region", name: "region", type: "text", inputmode: "numeric",
                              autocomplete: "off", maxlength: 6, placeholder: "32",
                              "aria-describedby": "sit-region-help sit-region-error" });
  const sector = h("input", { id: "sit-sector", name: "sector", type: "text", maxlength: 1,
                              autocomplete: "off", placeholder: "C",
                              "aria-describedby": "sit-sector-help sit-sector-error" });
  const regionError = h("p", { class: "field-error", id: "sit-region-error", role: "alert" });
  const sectorError = h("p", { class: "field-error", id: "sit-sector-error", role: "alert" });
  const form = h("form", { class: "filters", novalidate: true, "aria-label": "Scope" },
    h("div", { class: "field" }, h("label", { for: "sit-period" }, "Period"), period),
    h("div", { class: "field" }, h("label", { for: "sit-region" }, "Region"), region,
      h("p", { class: "help", id: "sit-region-help" }, "GB/T 2260 code prefix, e.g. 32"),
      regionError),
    h("div", { class: "field" }, h("label", { for: "sit-sector" }, "Sector"), sector,
      h("p", { class: "help", id: "sit-sector-help" }, "GB/T 4754 section letter, e.g. C"),
      sectorError),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Show")));
  const body = h("div", { class: "situation", dataset: { live: "situation" } });
  main.append(h("h1", {}, "Situation"), form, body);
  let timer = null;
  let stopped = false;

  function scope() {
    regionError.textContent = "";
    sectorError.textContent = "";
    region.removeAttribute("aria-invalid");
    sector.removeAttribute("aria-invalid");
    const r = region.value.trim();
    const s = sector.value.trim().toUpperCase();
    let ok = true;
    if (r && !/^\d{2}(\d{2}){0,2}$/.test(r)) {
      regionError.textContent = "A region is 2, 4 or 6 digits (province, city, county).";
      region.setAttribute("aria-invalid", "true");
      ok = false;
    }
    if (s && !/^[A-T]$/.test(s)) {
      sectorError.textContent = "A sector is one letter from A to T.";
      sector.setAttribute("aria-invalid", "true");
      ok = false;
    }
    return ok ? { region: r || null, sector: s || null } : null;
  }

  async function refresh() {
    clearTimeout(timer);
    const where = scope();
    if (!where) return;
    const [days, , bucket] = PERIODS.find(([v]) => v === period.value);
    const since = new Date(Date.now() - Number(days) * 86400_000).toISOString();
    try {
      const s = await api("/federation/situation", { show: false,
        query: { since, bucket, region: where.region, sector: where.sector } });
      draw(s);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.field === "region") regionError.textContent = err.message;
      else if (err.field === "sector") sectorError.textContent = err.message;
      else if (err.status) clear(body).append(h("p", { class: "field-error", role: "alert",
                                                     text: `The situation could not be read: ${err.message}` }));
    } finally {
      if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function draw(s) {
    const t = s.totals;
    clear(body).append(
      h("dl", { class: "figures", "aria-label": "Totals" },
        COLUMNS.map(([k, label]) => h("div", {}, h("dt", {}, label), h("dd", { text: fmt(t[k]) })))),
      h("div", { class: "charts" },
        barChart("Events by province", s.by_province.map((p) => [p.name || p.code, p.events])),
        barChart("Events by severity", s.by_severity.map((p) => [p.severity, p.events])),
        barChart("Events by sector", s.by_sector.map((p) => [p.name || p.code, p.events]))),
      h("section", { "aria-labelledby": "sit-tables-h" },
        h("h2", { id: "sit-tables-h" }, "By province, sector and severity"),
        table("By province", "Province", s.by_province, (r) => `${r.name} (${r.code})`),
        table("By sector", "Sector", s.by_sector, (r) => `${r.code} ${r.name}`),
        table("By severity", "Severity", s.by_severity, (r) => r.severity)),
      h("section", { "aria-labelledby": "sit-products-h" },
        h("h2", { id: "sit-products-h" }, "Most affected products"),
        s.top_products.length ? h("div", { class: "table-wrap" }, h("table", { class: "data" },
          h("thead", {}, h("tr", {}, ["Vendor", "Product", "Matched assets", "Enterprises",
            "Advisories", "Events"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, s.top_products.map((p) => h("tr", {},
            h("td", { "data-label": "Vendor", text: p.vendor }),
            h("td", { "data-label": "Product", text: p.product }),
            h("td", { class: "num", "data-label": "Matched assets", text: fmt(p.matched_assets) }),
            h("td", { class: "num", "data-label": "Enterprises", text: fmt(p.enterprises) }),
            h("td", { "data-label": "Advisories", text: p.advisories.join(", ") || "–" }),
            h("td", { class: "num", "data-label": "Events", text: fmt(p.events) }))))))
          : h("p", { class: "muted" }, "No product matched an advisory or an event.")),
      h("section", { "aria-labelledby": "sit-pending-h" },
        h("h2", { id: "sit-pending-h" }, "Orders not acknowledged"),
        s.pending_orders.length ? h("div", { class: "table-wrap" }, h("table", { class: "data pending" },
          h("thead", {}, h("tr", {}, ["Order", "Enterprise", "State", "Overdue"].map(
            (c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, s.pending_orders.map((o) => h("tr", { class: o.overdue ? "overdue" : null },
            h("td", { "data-label": "Order" }, h("a", { href: `#/orders/${o.order_id}`, text: o.order_id })),
            h("td", { "data-label": "Enterprise", text: o.target }),
            h("td", { "data-label": "State" }, h("span", { class: `ostate ostate-${o.state}`, text: o.state })),
            h("td", { "data-label": "Overdue", text: o.overdue ? "overdue" : "no" }))))))
          : h("p", { class: "muted" }, "Every enterprise has acknowledged its orders.")));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  period.addEventListener("change", refresh);
  if (!ctx.me.tenant_id) await refresh();
  else body.append(h("p", { class: "muted" }, "The situation spans enterprises: log in with a node-wide token."));
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
