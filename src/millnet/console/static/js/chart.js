// A live chart of one point: uPlot over a ring buffer of at most 10,000 samples, redrawn at
// most once per animation frame however fast samples arrive.

import { h } from "./dom.js";

export const CAPACITY = 10_000;
const HEIGHT = 150;

export class LiveChart {
  constructor(label, unit) {
    this.label = label;
    this.unit = unit;
    this.xs = new Float64Array(CAPACITY);  // seconds (uPlot's time scale)
    this.ys = new Float64Array(CAPACITY);
    this.start = 0;  // index of the oldest sample
    this.count = 0;
    this.lastX = -Infinity;
    this.frame = 0;
    this.outX = new Float64Array(CAPACITY);
    this.outY = new Float64Array(CAPACITY);
    this.el = h("div", { class: "chart", role: "img",
                         "aria-label": `Chart of ${label}${unit ? ` (${unit})` : ""}`,
                         dataset: { points: "0" } });
    this.plot = null;
    this.resize = new ResizeObserver(() => this.fit());
  }

  /** Create the plot once the element is in the document (it needs a width). */
  mount() {
    const width = Math.max(this.el.clientWidth, 200);
    this.plot = new window.uPlot({
      width, height: HEIGHT, legend: { show: false }, cursor: { drag: { x: false } },
      scales: { x: { time: true } },
      axes: [{ stroke: "#666" }, { stroke: "#666", size: 56 }],
      series: [{}, { label: this.label, stroke: "#1769aa", width: 1.5, spanGaps: false,
                     points: { show: false } }],
    }, [[], []], this.el);
    this.resize.observe(this.el);
    this.draw();
  }

  fit() {
    if (this.plot && this.el.clientWidth > 0) {
      this.plot.setSize({ width: this.el.clientWidth, height: HEIGHT });
    }
  }

  /** Append samples (epoch ms, value or null); older than the newest are ignored. */
  push(tsMs, value) {
    const x = tsMs / 1000;
    if (x <= this.lastX) return;
    this.lastX = x;
    const at = (this.start + this.count) % CAPACITY;
    this.xs[at] = x;
    this.ys[at] = value === null ? NaN : value;
    if (this.count < CAPACITY) this.count += 1;
    else this.start = (this.start + 1) % CAPACITY;
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.frame = 0;
    this.el.dataset.points = String(this.count);
    if (!this.plot) return;
    const head = Math.min(this.count, CAPACITY - this.start);
    this.outX.set(this.xs.subarray(this.start, this.start + head));
    this.outY.set(this.ys.subarray(this.start, this.start + head));
    if (head < this.count) {
      this.outX.set(this.xs.subarray(0, this.count - head), head);
      this.outY.set(this.ys.subarray(0, this.count - head), head);
    }
    const ys = Array.from(this.outY.subarray(0, this.count), (v) => (Number.isNaN(v) ? null : v));
    this.plot.setData([this.outX.subarray(0, this.count), ys]);
  }

  destroy() {
    cancelAnimationFrame(this.frame);
    this.resize.disconnect();
    if (this.plot) this.plot.destroy();
  }
}
