// The ISA-95 tree (enterprise > site > area > line > device) with the roll-up of each site,
// area and line: machines running, idle, down, unknown and active alarms
// (GET /assets, GET /assets/{id}/status), refreshed every few seconds.

import { api } from "../api.js";
import { clear, h } from "../dom.js";

const REFRESH_MS = 5000;
const STATES = [
  ["running", "running"], ["idle", "idle"], ["down", "down"], ["unknown", "no data"],
];

export async function render(main, _args, ctx) {
  const body = h("div", { class: "tree-page", dataset: { live: "tree" } });
  main.append(h("h1", {}, "Plant"), body);
  const open = new Set();  // asset ids expanded by the user, kept across refreshes
  let first = true;
  let timer = null;
  let stopped = false;

  async function refresh() {
    try {
      const tree = await api("/assets", { query: ctx.tenantQuery });
      const statuses = await Promise.all(
        tree.roots.map((root) => api(`/assets/${root.id}/status`)));
      draw(tree.roots, statuses);
    } catch (err) {
      if (first && err.status) body.append(h("p", { class: "muted" }, "The plant could not be read."));
    } finally {
      first = false;
      if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function draw(roots, statuses) {
    const nodes = new Map();
    const devices = new Map();
    for (const status of statuses) {
      for (const n of status.nodes) nodes.set(n.asset_id, n);
      for (const d of status.devices) devices.set(d.device_id, d);
    }
    const focused = document.activeElement && document.activeElement.dataset.key;
    clear(body);
    if (!roots.length) {
      body.append(h("p", { class: "muted" }, "No assets yet: devices appear here once they report."));
      return;
    }
    body.append(h("ul", { class: "tree", role: "list" },
      roots.map((r) => item(r, nodes, devices, 0))));
    if (focused) {
      const again = body.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  function item(node, nodes, devices, depth) {
    if (node.kind === "device") {
      const d = devices.get(node.id) || { state: null, alarms: 0 };
      return h("li", { class: "device" },
        h("a", { href: `#/device/${node.id}`, class: "device-link",
                 dataset: { key: `a${node.id}` } }, node.name),
        d.state ? h("span", { class: `state state-${d.state}`,
                              text: d.state === "unknown" ? "no data" : d.state }) : null,
        d.alarms ? h("span", { class: "badge alarm", text: `${d.alarms} alarm${d.alarms > 1 ? "s" : ""}` }) : null);
    }
    const n = nodes.get(node.id);
    const expanded = open.has(node.id) || (first && depth < 2) || (!open.size && depth < 2);
    const details = h("details", { open: expanded, dataset: { asset: node.id } },
      h("summary", { dataset: { key: `s${node.id}` } },
        h("span", { class: "name", text: node.name }),
        h("span", { class: "kind", text: node.kind }),
        n ? rollup(n) : null),
      h("ul", { role: "list" }, node.children.map((c) => item(c, nodes, devices, depth + 1))));
    details.addEventListener("toggle", () => {
      if (details.open) open.add(node.id); else open.delete(node.id);
    });
    if (expanded) open.add(node.id);
    return h("li", { class: node.kind }, details);
  }

  function rollup(n) {
    const chips = STATES.filter(([key]) => key !== "unknown" || n.unknown)
      .map(([key, label]) => h("span", { class: `chip chip-${key}`, title: label },
        h("span", { class: "count", text: n[key] }), ` ${label}`));
    chips.push(h("span", { class: `chip chip-alarms${n.alarms ? " hot" : ""}` },
      h("span", { class: "count", text: n.alarms }), ` alarm${n.alarms === 1 ? "" : "s"}`));
    return h("span", { class: "rollup", dataset: { asset: n.asset_id } }, chips);
  }

  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
