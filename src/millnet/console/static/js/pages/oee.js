// OEE by line and shift (ISO 22400-2, GET /kpi?level=line): availability, performance
// (effectiveness), quality ratio, OEE, MTBF and MTTR per line for a shift instance (the current
// one first) or over the last 24 hours. A KPI the API leaves null (nothing to divide by) is an
// em dash, never 0.

import { api, ApiError } from "../api.js";
import { clear, h } from "../dom.js";

const REFRESH_MS = 10_000;
const DASH = "—";
const ALL_DAY = "__day";

function pct(value) {
  return value === null || value === undefined ? DASH : `${(value * 100).toFixed(1)} %`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return DASH;
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function lines(roots) {
  const found = [];
  function walk(node, prefix) {
    const path = prefix ? `${prefix}/${node.name}` : node.name;
    if (node.kind === "line") found.push({ id: node.id, path });
    for (const child of node.children || []) walk(child, path);
  }
  for (const root of roots) walk(root, "");
  return found;
}

const instanceKey = (row) => `${row.day}/${row.shift}`;

export async function render(main, _args, ctx) {
  const tree = await api("/assets", { query: ctx.tenantQuery });
  const all = lines(tree.roots);
  const picker = h("select", { id: "oee-shift", name: "shift" });
  const note = h("p", { class: "help", id: "oee-note" });
  const table = h("div", { class: "table-wrap", dataset: { live: "oee" } });
  main.append(h("h1", {}, "OEE"),
    h("form", { class: "filters", "aria-label": "Choose a shift" },
      h("div", { class: "field" }, h("label", { for: "oee-shift" }, "Shift"), picker)),
    note, table);
  if (!all.length) {
    table.append(h("p", { class: "muted" }, "No lines yet: KPIs appear once machines report."));
    return null;
  }
  let timer = null;
  let stopped = false;
  let chosen = null;  // null: the current (latest) shift instance

  async function refresh() {
    clearTimeout(timer);
    try {
      const byShift = await Promise.all(all.map((line) => api("/kpi", {
        query: { level: "line", asset_id: line.id, by: "shift" } })));
      const instances = new Map();  // key -> start_ms
      for (const answer of byShift) {
        for (const row of answer.rows) instances.set(instanceKey(row), row.start_ms);
      }
      const ordered = [...instances.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
      fillPicker(ordered);
      let rows;
      if (picker.value === ALL_DAY) {
        const whole = await Promise.all(all.map((line) => api("/kpi", {
          query: { level: "line", asset_id: line.id, by: "none" } })));
        rows = whole.map((answer) => answer.rows[0] || null);
        note.textContent = "Over the last 24 hours, every shift together.";
      } else {
        const key = picker.value;
        rows = byShift.map((answer) => answer.rows.find((r) => instanceKey(r) === key) || null);
        note.textContent = key ? `Shift ${key} (day/shift), from the machines' own states and ` +
          "counters." : "No shift has data yet.";
      }
      draw(rows);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;  // API errors and lost connections are shown
    } finally {
      if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function fillPicker(ordered) {
    const keep = chosen;
    clear(picker);
    ordered.forEach((key, i) => picker.append(
      h("option", { value: key }, i === 0 ? `${key} (current)` : key)));
    picker.append(h("option", { value: ALL_DAY }, "Last 24 hours"));
    picker.value = keep && (keep === ALL_DAY || ordered.includes(keep)) ? keep
      : (ordered[0] || ALL_DAY);
  }

  function draw(rows) {
    clear(table).append(h("table", { class: "data oee" },
      h("caption", { class: "sr-only" }, "KPIs per line"),
      h("thead", {}, h("tr", {}, ["Line", "Machines", "Availability", "Performance",
        "Quality", "OEE", "MTBF", "MTTR"].map((c, i) => h("th", { scope: "col",
                                                        class: i ? "num" : null }, c)))),
      h("tbody", {}, all.map((line, i) => {
        const row = rows[i];
        const k = row ? row.kpis : {};
        return h("tr", { dataset: { line: line.id } },
          h("th", { scope: "row", "data-label": "Line", text: line.path }),
          h("td", { "data-label": "Machines", class: "num", text: row ? row.machines : DASH }),
          h("td", { "data-label": "Availability", class: "num", text: pct(k.availability) }),
          h("td", { "data-label": "Performance", class: "num", text: pct(k.effectiveness) }),
          h("td", { "data-label": "Quality", class: "num", text: pct(k.quality_ratio) }),
          h("td", { "data-label": "OEE", class: "num oee-value", text: pct(k.oee) }),
          h("td", { "data-label": "MTBF", class: "num", text: duration(k.mtbf_s) }),
          h("td", { "data-label": "MTTR", class: "num", text: duration(k.mttr_s) }));
      }))));
  }

  picker.addEventListener("change", () => {
    chosen = picker.value;
    refresh();
  });
  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
