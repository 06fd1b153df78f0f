// A comparison on the page: the right side's scene and cards beside the lab's own (the left
// side), and below them one comparison of the two: p50, p95, p99, max, failures and each
// backend's share, a latency distribution with both sides on one chart, and a sentence that
// states the result in numbers. Built on the lab's root element and fed by two stores: the
// lab's, and the right side's (feed.js fills it from `state.compare.right` and the batches
// marked `"side": "right"`). The components are the lab's own (Scene, Cards): a second lab
// needed no new renderer.
//
// Two balancers in front of the same backends (a lesson's `balancers: 2`) come the same way;
// the page knows them by the right side's backends having the left's very addresses. Each
// side's cards then show that balancer's own view, each balancer's decisions get a log of
// their own, and the sentence adds the two up: what the backends themselves carry.

import { Scene } from "./scene.js";
import { MODE_WORDS } from "./words.js";
import { Cards, backendQueue } from "./cards.js";
import { DecisionLog } from "./log.js";
import { fit } from "./charts.js";
import { OKABE_ITO, INK } from "./palette.js";

const PANELS_EVERY_MS = 200; // as the lab page's own panels (page.js)
const COMPARE_TITLE = "a second balancer with its own backends, alike, on the same traffic: compare two algorithms side by side";
const SIDE_INK = { left: OKABE_ITO.blue, right: OKABE_ITO.vermillion };
const SIDE_DASH = { left: [], right: [7, 4] }; // colour is never the only signal
const SHARED_TITLE = "a second balancer in front of the same backends, the clients shared out between the two";

/** True if the right side's balancer fronts the left's own backend processes. */
export function sameBackends(state) {
  const right = state.compare && state.compare.right;
  if (!right || right.backends.length !== state.backends.length) return false;
  return right.backends.every((b, i) => b.name === state.backends[i].name && b.address === state.backends[i].address);
}

/** "b1 2 · b2 2 · b3 0": what both balancers have in progress (or routed) per backend. */
export function bothSides(leftCounters, rightCounters, key) {
  const names = Object.keys(leftCounters.backends);
  const number = (counters, name) => (counters.backends[name] ? counters.backends[name][key] || 0 : 0);
  return names.map((name) => `${name} ${number(leftCounters, name) + number(rightCounters, name)}`).join(" · ");
}

/** Two balancers, one set of backends: each balancer's decisions, side by side. */
class SharedLogs {
  constructor(panel, leftStore, rightStore) {
    // Their lists are parts of their own name ("side-log"), so that the lab's own log, and
    // anything else that looks for the page's "log", never finds one of these instead.
    this.box = Object.assign(document.createElement("div"), { className: "shared-logs", hidden: true });
    this.logs = [["left", leftStore], ["right", rightStore]].map(([side, store]) => {
      const section = Object.assign(document.createElement("section"), { className: `shared-log ${side}` });
      section.setAttribute("aria-label", `The ${side} balancer's decisions`);
      const title = Object.assign(document.createElement("h3"), { textContent: `${side === "left" ? "Left" : "Right"} balancer's decisions` });
      const list = Object.assign(document.createElement("ol"), { className: "log" });
      list.dataset.part = "side-log";
      section.append(title, list);
      this.box.append(section);
      return new DecisionLog(section, store, list);
    });
    panel.append(this.box);
  }

  render(now) {
    if (this.box.hidden) return;
    for (const log of this.logs) log.render(now);
  }
}

/** The right side: its own scene and cards, its balancer's algorithm, and its own loop. */
class RightSide {
  constructor(pane, store, template) {
    this.pane = pane;
    this.store = store;
    this.part = (name) => pane.querySelector(`[data-part="${name}"]`);
    pane.append(template.cloneNode(true)); // the lab's own card, for the right side's cards
    this.scene = new Scene(pane);
    this.cards = new Cards(pane, store, { onLayout: () => this.scene.invalidateLayout() });
    this.countersDirty = true;
    store.on("batch", (batch) => this.scene.ingest(batch.events));
    store.on("counters", () => {
      this.countersDirty = true;
    });
    store.on("state", ({ state }) => this.renderState(state));
    const select = this.part("algorithm");
    select.addEventListener("change", () => {
      if (this.store.state && select.value !== this.store.state.algorithm) {
        this.store.command({ action: "set_algorithm", algorithm: select.value });
      }
    });
  }

  renderState(state) {
    const select = this.part("algorithm");
    if (select.options.length !== state.algorithms.length) {
      select.replaceChildren(...state.algorithms.map((name) => new Option(name, name)));
    }
    select.value = state.algorithm;
    this.part("balancer-algorithm").textContent = state.algorithm;
    this.part("balancer-mode").textContent = MODE_WORDS[state.mode] || MODE_WORDS.http;
    if (state.traffic.available) this.scene.setClients(state.traffic.clients);
    this.scene.invalidateLayout();
  }

  renderPanels() {
    const { state, counters } = this.store;
    if (!this.countersDirty || !state || !counters) return;
    this.cards.renderCounters(counters);
    const queues = new Map();
    for (const backend of state.backends) {
      const numbers = counters.backends[backend.name];
      const waiting = numbers ? backendQueue(backend, numbers, state.mode) : 0;
      if (waiting) queues.set(backend.name, waiting);
    }
    this.scene.setQueues(queues);
    this.countersDirty = false;
  }
}

/** Numbers of one side for the comparison, from its exact counters. */
export function sideNumbers(state, counters) {
  const traffic = (counters && counters.traffic) || null;
  const spread = (traffic && traffic.distribution) || { n: 0, p50: null, p95: null, p99: null, max: null, cdf: [] };
  const total = counters ? counters.total : 0;
  const shares = {};
  for (const backend of state.backends) {
    const routed = counters && counters.backends[backend.name] ? counters.backends[backend.name].total : 0;
    shares[backend.name] = total ? routed / total : 0;
  }
  const failed = traffic ? traffic.failed + (traffic.status["5xx"] || 0) : 0;
  return { algorithm: state.algorithm, sent: traffic ? traffic.sent : 0, ...spread, failed, shares };
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

const count = new Intl.NumberFormat("en");

/** "least-connections p95 118 ms vs round-robin 512 ms on the same 2,400 requests". */
export function resultSentence(left, right) {
  if (!left.n || !right.n) return "Waiting for answers on both sides…";
  const name = (side, other, word) => (side.algorithm === other.algorithm ? `${word} (${side.algorithm})` : side.algorithm);
  const [first, second] = left.p95 <= right.p95 ? [left, right] : [right, left];
  const names = new Map([
    [left, name(left, right, "left")],
    [right, name(right, left, "right")],
  ]);
  const sent = Math.max(left.sent, right.sent);
  let text = `${names.get(first)} p95 ${ms(first.p95)} vs ${names.get(second)} ${ms(second.p95)} on the same ${count.format(sent)} requests`;
  if (left.failed || right.failed) text += ` (failed: ${names.get(left)} ${left.failed}, ${names.get(right)} ${right.failed})`;
  return text;
}

/** Both sides' distributions on one chart: the share of answers at or under each time. */
export function drawDistribution(canvas, sides) {
  const { ctx, w, h } = fit(canvas);
  const k = Number(canvas.dataset.scale || 1);
  const font = (size, weight = 600) => `${weight} ${Math.round(size * k)}px system-ui, sans-serif`;
  const left = 44 * k;
  const bottom = h - 18 * k;
  const top = 8;
  const right = w - 8;
  const all = sides.flatMap((s) => s.cdf).filter((v) => v > 0);
  ctx.fillStyle = INK;
  ctx.font = font(13);
  ctx.textBaseline = "middle";
  if (!all.length) {
    ctx.textAlign = "center";
    ctx.fillText("no answers yet", w / 2, h / 2);
    return;
  }
  // A log scale when the times span more than a factor of 20 (a slow backend's tail).
  const lo = Math.max(Math.min(...all), 0.1);
  const hi = Math.max(...all, lo * 1.5);
  const log = hi / lo > 20;
  const x = (v) => {
    const f = log ? Math.log(Math.max(v, lo) / lo) / Math.log(hi / lo) : (v - 0) / hi;
    return left + f * (right - left);
  };
  const y = (f) => bottom - f * (bottom - top);
  ctx.strokeStyle = "#999";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left, top);
  ctx.lineTo(left, bottom);
  ctx.lineTo(right, bottom);
  ctx.stroke();
  ctx.textAlign = "right";
  ctx.font = font(11);
  for (const f of [0, 0.5, 0.95]) {
    ctx.fillText(`${Math.round(f * 100)}%`, left - 4, y(f));
    ctx.strokeStyle = "#ddd";
    ctx.beginPath();
    ctx.moveTo(left, y(f));
    ctx.lineTo(right, y(f));
    ctx.stroke();
  }
  ctx.textAlign = "center";
  const ticks = log ? [lo, Math.sqrt(lo * hi), hi] : [0, hi / 2, hi];
  for (const t of ticks) ctx.fillText(ms(t), Math.min(Math.max(x(t), left + 20), right - 24), bottom + 9 * k);
  const quantiles = (n) => Array.from({ length: n }, (_, i) => (i < 99 ? (i + 1) / 100 : [0.995, 0.999][i - 99]));
  for (const side of sides) {
    if (!side.cdf.length) continue;
    const fractions = quantiles(side.cdf.length);
    ctx.strokeStyle = SIDE_INK[side.side];
    ctx.lineWidth = 2.5 * k;
    ctx.setLineDash(SIDE_DASH[side.side]);
    ctx.beginPath();
    ctx.moveTo(x(side.cdf[0]), y(0));
    side.cdf.forEach((v, i) => ctx.lineTo(x(v), y(fractions[i])));
    ctx.lineTo(x(side.max), y(1));
    ctx.stroke();
    ctx.setLineDash([]);
  }
}

/** The comparison below the scenes: a sentence, a table and the distribution chart. */
class ComparisonPanel {
  constructor(panel) {
    this.part = (name) => panel.querySelector(`[data-part="${name}"]`);
    this.last = "";
  }

  render(leftState, leftCounters, rightState, rightCounters) {
    const left = { side: "left", ...sideNumbers(leftState, leftCounters) };
    const right = { side: "right", ...sideNumbers(rightState, rightCounters) };
    const shared = sameBackends(leftState) && leftCounters && rightCounters;
    const both = shared
      ? `Both balancers together, per backend: in progress ${bothSides(leftCounters, rightCounters, "active")}; routed ${bothSides(leftCounters, rightCounters, "total")}`
      : "";
    const key = JSON.stringify([left, right, both]);
    if (key === this.last) return;
    this.last = key;
    this.part("compare-sentence").textContent = shared ? both : resultSentence(left, right);
    this.renderTable(left, right);
    drawDistribution(this.part("compare-chart"), [left, right]);
  }

  renderTable(left, right) {
    const names = [...new Set([...Object.keys(left.shares), ...Object.keys(right.shares)])];
    const percent = (value) => `${Math.round(value * 100)}%`;
    const rows = [
      ["p50", ms(left.p50), ms(right.p50)],
      ["p95", ms(left.p95), ms(right.p95)],
      ["p99", ms(left.p99), ms(right.p99)],
      ["max", ms(left.max), ms(right.max)],
      ["failed", String(left.failed), String(right.failed)],
      // One row for every backend's share, so the table stays as short with twelve.
      [`share ${names.join(" · ")}`, names.map((n) => percent(left.shares[n] || 0)).join(" · "), names.map((n) => percent(right.shares[n] || 0)).join(" · ")],
    ];
    const table = this.part("compare-table");
    const head = document.createElement("tr");
    for (const [text, side] of [["", null], [`Left · ${left.algorithm}`, "left"], [`Right · ${right.algorithm}`, "right"]]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = text;
      if (side) th.dataset.side = side;
      head.append(th);
    }
    const body = rows.map(([label, a, b]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = label;
      tr.dataset.row = label.split(" ")[0];
      const cells = [a, b].map((value) => {
        const td = document.createElement("td");
        td.textContent = value;
        return td;
      });
      tr.append(th, ...cells);
      return tr;
    });
    table.replaceChildren(head, ...body);
  }
}

/** The page's comparison mode for one lab: the right side, the comparison, the toggle. */
export class Comparison {
  constructor(root, store, rightStore) {
    this.root = root;
    this.store = store;
    this.part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.pane = this.part("compare-pane");
    this.panelAt = 0;
    this.right = new RightSide(this.pane, rightStore, this.part("card-template"));
    this.panel = new ComparisonPanel(this.part("comparison"));
    this.logs = new SharedLogs(this.part("comparison"), store, rightStore);
    this.heading = this.part("comparison").querySelector("h2");
    this.open = false;
    store.on("state", ({ state }) => this.renderState(state));
    this.part("compare-toggle").addEventListener("click", () => this.toggle());
    root.lab.right = { store: rightStore, scene: this.right.scene };
  }

  renderState(state) {
    const open = Boolean(state.compare);
    this.open = open;
    this.root.classList.toggle("comparing", open);
    this.pane.hidden = !open;
    this.part("comparison").hidden = !open;
    this.part("left-title").hidden = !open;
    if (open) this.part("left-algorithm").textContent = state.algorithm;
    const toggle = this.part("compare-toggle");
    toggle.setAttribute("aria-pressed", String(open));
    toggle.title = open ? "end the comparison: stop the right side's processes" : COMPARE_TITLE;
    if (open) this.part("compare-seed").textContent = `seed ${state.compare.seed}`;
    const shared = open && sameBackends(state);
    this.logs.box.hidden = !shared;
    this.root.classList.toggle("two-balancers", shared);
    this.heading.firstChild.textContent = shared ? "Two balancers, the same backends " : "Same traffic, compared ";
    this.right.part("clients-label").textContent = shared ? "Clients" : "Same clients";
    if (shared) {
      this.part("compare-seed").textContent = "same backends";
      toggle.title = `${SHARED_TITLE}; press to close the second balancer`;
    }
  }

  /** Open a comparison against the next algorithm (the learner changes it on the right). */
  toggle() {
    const state = this.store.state;
    if (!state) return;
    if (state.compare) return this.store.command({ action: "end_compare" });
    const others = state.algorithms.filter((name) => name !== state.algorithm);
    const wanted = state.algorithm === "round-robin" ? "least-connections" : others[0];
    return this.store.command({ action: "compare", right: { algorithm: wanted } });
  }

  /** Draw the right side and the comparison in a frame loop of their own. */
  start() {
    new ResizeObserver(() => this.right.scene.invalidateLayout()).observe(this.right.part("scene"));
    new ResizeObserver(() => this.right.scene.invalidateLayout()).observe(this.right.part("backends"));
    const reduced = window.matchMedia("(prefers-reduced-motion: reduce)");
    this.right.scene.reduced = reduced.matches;
    const loop = (now) => {
      this.frame(now);
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  frame(now) {
    if (!this.open) return;
    this.right.scene.frame(now);
    if (now - this.panelAt < PANELS_EVERY_MS) return;
    this.panelAt = now;
    this.right.renderPanels();
    const left = this.store;
    const right = this.right.store;
    if (left.state && right.state) this.panel.render(left.state, left.counters, right.state, right.counters);
    this.logs.render(now);
  }
}
