// One device: its points' last values and a live chart per numeric point. History comes from
// GET /telemetry/raw, then samples arrive by server push (stream.js); after a reconnect the
// gap is filled from the history API again.

import { api, ApiError } from "../api.js";
import { LiveChart } from "../chart.js";
import { append, fmt, h, time, uid } from "../dom.js";
import { openStream } from "../stream.js";

const HISTORY_MS = 15 * 60 * 1000;
const QUALITY = ["good", "uncertain", "bad", "stale"];

export async function render(main, args, ctx) {
  const id = Number(args[0]);
  if (!Number.isInteger(id) || id < 1) {
    main.append(h("h1", {}, "Device"), h("p", {}, "No such device."));
    return null;
  }
  let device;
  try {
    device = await api(`/devices/${id}`);
  } catch (err) {
    main.append(h("h1", {}, "Device"), h("p", { class: "muted" }, "This device could not be read."));
    return null;
  }
  const numeric = device.points.filter((p) => p.datatype !== "string");
  const cells = new Map();  // series id -> {value, time, quality} elements
  const charts = new Map();  // series id -> LiveChart

  append(main, [
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "#/tree" }, "Plant"), " / ",
      h("span", { text: device.path })),
    h("h1", { class: "device-name", text: device.name }),
    device.description ? h("p", { class: "description", text: device.description }) : null,
    identifierBlock(device, ctx),
    h("section", { "aria-labelledby": "points-h", dataset: { live: "device" } },
      h("h2", { id: "points-h" }, `Points (${device.points.length})`),
      h("div", { class: "points" }, device.points.map((p) => card(p))))]);

  function card(point) {
    const value = h("span", { class: "value", text: "–" });
    const when = h("span", { class: "when", text: "" });
    const quality = h("span", { class: "quality", text: "" });
    cells.set(point.series_id, { value, when, quality, unit: point.unit });
    const headingId = uid("point");
    const el = h("article", { class: "point", "aria-labelledby": headingId,
                              dataset: { series: point.series_id } },
      h("h3", { id: headingId, class: "point-name", text: point.name }),
      h("p", { class: "last" }, value, point.unit ? h("span", { class: "unit", text: ` ${point.unit}` }) : null,
        " ", when, " ", quality));
    if (point.datatype !== "string") {
      const chart = new LiveChart(point.name, point.unit);
      charts.set(point.series_id, chart);
      el.append(chart.el);
    }
    return el;
  }

  function show(seriesId, tsMs, value, q) {
    const cell = cells.get(seriesId);
    if (!cell) return;
    cell.value.textContent = fmt(value);
    cell.when.textContent = `at ${time(tsMs)}`;
    cell.quality.textContent = q ? QUALITY[q] || `quality ${q}` : "";
    cell.quality.className = `quality q${q}`;
  }

  for (const chart of charts.values()) chart.mount();
  const ids = device.points.map((p) => p.series_id);
  if (ids.length) {
    const last = await api("/telemetry/last", { query: { series: ids.join(",") } });
    for (const v of last.values) show(v.series_id, v.ts_ms, v.value, v.quality);
  }

  async function history(sinceMs) {
    if (!numeric.length) return;
    const series = numeric.map((p) => p.series_id);
    const answer = await api("/telemetry/raw", {
      query: { series: series.join(","), start: Math.floor(sinceMs),
               limit: Math.floor(100_000 / series.length) },
    });
    for (const s of answer.series) {
      const chart = charts.get(s.series_id);
      for (let i = 0; i < s.ts_ms.length; i += 1) {
        const v = s.value[i];
        chart.push(s.ts_ms[i], typeof v === "number" ? v : null);
      }
    }
  }

  await history(Date.now() - HISTORY_MS);
  let opened = false;
  const stream = numeric.length ? openStream(numeric.map((p) => p.series_id), {
    onOpen() {
      if (opened) {  // back after a gap: fetch what the stream did not carry
        const since = Math.min(...[...charts.values()].map((c) => c.lastX * 1000));
        history(Number.isFinite(since) ? since : Date.now() - HISTORY_MS).catch(() => {});
      }
      opened = true;
    },
    onSamples(ev) {
      const newest = new Map();
      for (let i = 0; i < ev.series_id.length; i += 1) {
        const sid = ev.series_id[i];
        const chart = charts.get(sid);
        if (chart) chart.push(ev.ts_ms[i], ev.value[i]);
        newest.set(sid, i);
      }
      for (const [sid, i] of newest) show(sid, ev.ts_ms[i], ev.value[i], ev.quality[i]);
    },
  }) : null;

  return () => {
    if (stream) stream.close();
    for (const chart of charts.values()) chart.destroy();
  };
}

/** The device's global identifier; operators may link one (PUT /devices/{id}/identifier). */
function identifierBlock(device, ctx) {
  const shown = h("span", { class: "identifier", text: device.identifier || "none linked" });
  const block = h("p", { class: "identifier-line" }, "Identifier: ", shown);
  if (!ctx.can("operator")) return block;
  const input = h("input", { id: "identifier", name: "identifier", type: "text",
                             autocomplete: "off", placeholder: "88.100.5/EQ-…",
                             "aria-describedby": "identifier-error" });
  const error = h("p", { id: "identifier-error", class: "field-error", role: "alert" });
  const form = h("form", { class: "inline-form", novalidate: true },
    h("label", { for: "identifier" }, "Link identifier"), input,
    h("button", { type: "submit" }, "Link"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const handle = input.value.trim();
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    const wrong = !handle ? "Enter an identifier." :
      !/^[^/\s]+\/\S+$/.test(handle) ? "An identifier is prefix/suffix, e.g. 88.100.5/EQ-1." : "";
    if (wrong) {
      error.textContent = wrong;
      input.setAttribute("aria-invalid", "true");
      return;
    }
    try {
      const updated = await api(`/devices/${device.id}/identifier`,
                                { method: "PUT", body: { handle }, show: false });
      shown.textContent = updated.identifier || "none linked";
      input.value = "";
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : String(err);
      input.setAttribute("aria-invalid", "true");
    }
  });
  return h("div", { class: "identifier-box" }, block, form);
}
