// Two small charts on plain canvas: requests per backend, and p50/p95 latency over a minute;
// `Charts` draws both for one lab (built on its root element, fed by its store).

import { backendColour, backendLabel, inkOn, INK, FAILED_INK } from "./palette.js";

// Each chart canvas's CSS size, kept up to date by a ResizeObserver. Reading clientWidth
// instead would force a layout in the middle of every animation frame after the counters
// changed the page (measured: about a third of the page's layout time under heavy traffic).
const sizes = new WeakMap();
const watcher = new ResizeObserver((entries) => {
  for (const entry of entries) sizes.set(entry.target, { w: entry.contentRect.width, h: entry.contentRect.height });
});

function cssSize(canvas) {
  let size = sizes.get(canvas);
  if (!size) {
    size = { w: canvas.clientWidth, h: canvas.clientHeight };
    sizes.set(canvas, size);
    watcher.observe(canvas);
  }
  return size;
}

/** Size a canvas for the screen's pixel ratio and clear it; returns its context and CSS size. */
export function fit(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const { w, h } = cssSize(canvas);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function text(ctx, value, x, y, { align = "left", size = 14, colour = INK, weight = 600 } = {}) {
  const scale = Number(ctx.canvas.dataset.scale || 1); // larger in presenter view
  ctx.font = `${weight} ${Math.round(size * scale)}px system-ui, sans-serif`;
  ctx.textAlign = align;
  ctx.textBaseline = "middle";
  ctx.fillStyle = colour;
  ctx.fillText(value, x, y);
}

/** Horizontal bars: requests routed to each backend; failures hatched at the bar's end. */
export function drawBars(canvas, rows) {
  const { ctx, w, h } = fit(canvas);
  if (!rows.length) {
    text(ctx, "no backends", w / 2, h / 2, { align: "center" });
    return;
  }
  const k = Number(canvas.dataset.scale || 1);
  const labelW = 40 * k;
  const numberW = 118 * k;
  const rowH = Math.min(30, h / rows.length);
  const size = Math.max(10, Math.min(15, rowH * 0.8));
  const max = Math.max(1, ...rows.map((r) => r.total));
  rows.forEach((row, i) => {
    const y = i * rowH + rowH / 2;
    const barH = Math.max(rowH * 0.7, 4);
    const colour = backendColour(row.name);
    text(ctx, row.name, 0, y, { size, weight: 700 });
    const width = ((w - labelW - numberW) * row.total) / max;
    ctx.fillStyle = colour;
    ctx.fillRect(labelW, y - barH / 2, width, barH);
    if (row.failures > 0 && row.total > 0) {
      const fw = Math.max((width * Math.min(row.failures, row.total)) / row.total, 3);
      hatch(ctx, labelW + width - fw, y - barH / 2, fw, barH);
    }
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = INK;
    ctx.strokeRect(labelW, y - barH / 2, width, barH);
    if (width > 22 && barH > 14) text(ctx, backendLabel(row.name), labelW + 6, y, { size: 12, colour: inkOn(colour) });
    const failures = row.failures ? ` (${row.failures} failed)` : "";
    text(ctx, `${row.total}${failures}`, labelW + width + 6, y, { size, weight: 700 });
  });
}

function hatch(ctx, x, y, w, h) {
  ctx.save();
  ctx.beginPath();
  ctx.rect(x, y, w, h);
  ctx.clip();
  ctx.fillStyle = "#FFFFFF";
  ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = FAILED_INK;
  ctx.lineWidth = 2;
  for (let k = -h; k < w; k += 6) {
    ctx.beginPath();
    ctx.moveTo(x + k, y + h);
    ctx.lineTo(x + k + h, y);
    ctx.stroke();
  }
  ctx.restore();
}

/** "12.5 ms", or "2.5 s" past a second: short enough for the axis. */
function duration(ms) {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(2)} s` : `${+ms.toFixed(1)} ms`;
}

function niceCeiling(value) {
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

/**
 * p50 (solid) and p95 (dashed) per second for the last minute; gaps where nothing finished.
 * `running` is the second still under way (what answered in it so far, or null): without it
 * the chart would say "no answers yet" for up to a second while the header shows a p50.
 */
export function drawLatency(canvas, closed, running = null) {
  const last = closed.length ? closed[closed.length - 1].t : -Infinity;
  const points = running && running.t > last ? [...closed, running] : closed;
  const { ctx, w, h } = fit(canvas);
  const left = 64 * Number(canvas.dataset.scale || 1);
  const bottom = h - 20;
  const top = 8;
  const right = w - 8;
  const measured = points.filter((p) => p.p95 != null);
  const end = points.length ? points[points.length - 1].t + 1 : Math.floor(Date.now() / 1000);
  const start = end - 60;
  const max = niceCeiling(Math.max(1, ...measured.map((p) => p.p95)));
  const x = (t) => left + ((t - start) / 60) * (right - left);
  const y = (ms) => bottom - (ms / max) * (bottom - top);
  ctx.strokeStyle = "#BBBBBB";
  ctx.lineWidth = 1;
  for (const ms of [0, max / 2, max]) {
    ctx.beginPath();
    ctx.moveTo(left, y(ms));
    ctx.lineTo(right, y(ms));
    ctx.stroke();
    text(ctx, duration(ms), left - 4, y(ms), { align: "right", size: 12, weight: 500 });
  }
  text(ctx, "−60 s", left, h - 8, { size: 12, weight: 500 });
  text(ctx, "now", right, h - 8, { align: "right", size: 12, weight: 500 });
  describe(canvas, measured[measured.length - 1]);
  if (!measured.length) {
    text(ctx, "no answers yet", (left + right) / 2, (top + bottom) / 2, { align: "center", colour: "#555" });
    return;
  }
  const line = (key, dash, width) => {
    ctx.setLineDash(dash);
    ctx.lineWidth = width;
    ctx.strokeStyle = INK;
    ctx.beginPath();
    let drawing = false;
    for (const p of points) {
      if (p.t < start || p[key] == null) {
        drawing = false;
        continue;
      }
      if (drawing) ctx.lineTo(x(p.t + 0.5), y(p[key]));
      else ctx.moveTo(x(p.t + 0.5), y(p[key]));
      drawing = true;
    }
    ctx.stroke();
    ctx.setLineDash([]);
    for (const p of points) {
      if (p.t >= start && p[key] != null) {
        ctx.beginPath();
        ctx.arc(x(p.t + 0.5), y(p[key]), 2.5, 0, Math.PI * 2);
        ctx.fillStyle = INK;
        ctx.fill();
      }
    }
  };
  line("p95", [7, 5], 2);
  line("p50", [], 3);
  legend(ctx, left + 8, top + 8);
}

/** Say the latest figures in the chart's accessible name, as the picture shows them. */
function describe(canvas, latest) {
  const name = latest
    ? `p50 and p95 latency over the last minute; latest: p50 ${latest.p50} ms, p95 ${latest.p95} ms`
    : "p50 and p95 latency over the last minute: no answers yet";
  if (canvas.getAttribute("aria-label") !== name) canvas.setAttribute("aria-label", name);
}

function legend(ctx, x, y) {
  ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
  ctx.fillRect(x - 4, y - 8, 150, 18);
  ctx.strokeStyle = INK;
  ctx.lineWidth = 3;
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x + 22, y);
  ctx.stroke();
  text(ctx, "p50", x + 27, y, { size: 13 });
  ctx.lineWidth = 2;
  ctx.setLineDash([7, 5]);
  ctx.beginPath();
  ctx.moveTo(x + 66, y);
  ctx.lineTo(x + 92, y);
  ctx.stroke();
  ctx.setLineDash([]);
  text(ctx, "p95", x + 97, y, { size: 13 });
}

const PANELS_DIRTY = { bars: true, latency: true };

const CHART_TITLES = { http: "Latency per request", tcp: "Connection lifetime", udp: "Round trip per datagram" };

export class Charts {
  constructor(root, store) {
    const part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.store = store;
    this.bars = part("bars");
    this.latency = part("latency");
    this.title = part("latency-title");
    this.dirty = { ...PANELS_DIRTY };
    this.mode = null;
    this.since = -Infinity; // seconds before a change of mode are another kind of figure
    store.on("state", ({ state }) => this.onState(state));
    store.on("counters", () => {
      this.dirty.bars = true;
    });
    store.on("batch", (batch) => {
      const now = batch.latency_now;
      if (batch.latency.length || (now && now.t) !== (this.shownNow && this.shownNow.t)) this.dirty.latency = true;
    });
    part("save-bars").addEventListener("click", () => savePng(this.bars, "requests-per-backend.png"));
    part("save-latency").addEventListener("click", () => savePng(this.latency, "latency.png"));
  }

  onState(state) {
    // The second of the switch mixes both kinds of figure: the chart starts after it.
    if (this.mode !== null && state.mode !== this.mode) this.since = Math.floor(Date.now() / 1000) + 1;
    this.mode = state.mode;
    // Layer 4 TCP times whole connections, not requests: say so, and never mix the two. At
    // udp the chart is each datagram's round trip (a flow's life is its idle timeout).
    this.title.textContent = CHART_TITLES[state.mode] || CHART_TITLES.http;
    this.dirty.bars = true;
    this.dirty.latency = true;
  }

  invalidate() {
    this.dirty = { ...PANELS_DIRTY };
  }

  render() {
    const { state, counters } = this.store;
    const scale = this.bars.closest(".presenter") ? "1.4" : "1";
    if (this.bars.dataset.scale !== scale) {
      this.bars.dataset.scale = this.latency.dataset.scale = scale;
      this.invalidate();
    }
    if (this.dirty.bars && state) {
      // A row for each backend, readable: the chart grows with them (the side column scrolls).
      const needed = state.backends.length * 17 + 4;
      const height = needed > 100 ? `${needed}px` : "";
      if (this.bars.style.height !== height) this.bars.style.height = height;
      drawBars(this.bars, state.backends.map((b) => ({ name: b.name, ...((counters && counters.backends[b.name]) || b) })));
      this.dirty.bars = false;
    }
    if (this.dirty.latency) {
      const since = this.since;
      const now = this.store.latencyNow;
      this.shownNow = now;
      drawLatency(this.latency, this.store.history.filter((p) => p.t >= since), now && now.t >= since ? now : null);
      this.dirty.latency = false;
    }
  }
}

/** Download a chart as a PNG, drawn on white (the canvas itself is transparent). */
export function savePng(canvas, name) {
  const copy = document.createElement("canvas");
  copy.width = canvas.width;
  copy.height = canvas.height;
  const ctx = copy.getContext("2d");
  ctx.fillStyle = "#FFFFFF";
  ctx.fillRect(0, 0, copy.width, copy.height);
  ctx.drawImage(canvas, 0, 0);
  const link = document.createElement("a");
  link.download = name;
  link.href = copy.toDataURL("image/png");
  link.click();
}
