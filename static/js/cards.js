// The backend cards of one lab: one card per backend, its numbers, its state and why, and
// the buttons that act on it. Built on the lab's root element and fed by its store.
//
// `queued` is the backend's own waiting line, from real counters: a backend that works on
// at most `max_concurrency` requests at once has the rest of its `active` ones waiting.

import { backendColour, backendLabel, inkOn } from "./palette.js";

const SLOW_MS = 300; // what the card's "Slow" button adds to a backend
const FLAKY_RATE = 0.3;

/** Requests waiting at a backend: those active beyond its max concurrency (Layer 7). */
export function backendQueue(backend, numbers, mode) {
  const limit = backend.max_concurrency || 0;
  if (!limit || mode !== "http") return 0;
  return Math.max(0, (numbers.active || 0) - limit);
}

export class Cards {
  constructor(root, store, { onLayout }) {
    this.store = store;
    this.holder = root.querySelector('[data-part="backends"]');
    this.template = root.querySelector('[data-part="card-template"]');
    this.onLayout = onLayout;
    this.byName = new Map();
    this.holder.addEventListener("click", (event) => this.onClick(event));
    store.on("state", ({ state }) => this.renderState(state));
  }

  card(name) {
    return this.byName.get(name) || null;
  }

  renderState(state) {
    const wanted = new Set(state.backends.map((b) => b.name));
    for (const [name, card] of this.byName) {
      if (!wanted.has(name)) {
        card.remove();
        this.byName.delete(name);
      }
    }
    const pools = poolOf(state);
    const feeds = rulesFeeding(state);
    // Grouped by pool, in the balancer's order of pools; each card says which rule feeds it.
    const rank = (b) => (pools.has(b.name) ? state.pools.findIndex((p) => p.name === pools.get(b.name)) : 0);
    const ordered = state.backends.map((b, i) => [b, i]).sort(([a, i], [b, j]) => rank(a) - rank(b) || i - j).map(([b]) => b);
    let group = null;
    ordered.forEach((backend, i) => {
      let card = this.byName.get(backend.name);
      if (!card) {
        card = this.newCard(backend.name);
        this.byName.set(backend.name, card);
      }
      if (this.holder.children[i] !== card) this.holder.insertBefore(card, this.holder.children[i] || null);
      const pool = pools.get(backend.name);
      this.fillCard(card, backend, pool, feeds.get(pool));
      card.classList.toggle("group-start", Boolean(pool) && pool !== group && i > 0);
      group = pool;
    });
    const count = state.backends.length;
    this.holder.dataset.count = String(count);
    this.holder.classList.toggle("many", count > 4);
    this.holder.classList.toggle("crowded", count > 8);
    this.holder.classList.toggle("pooled", pools.size > 0);
    this.renderCounters(this.store.counters);
    this.onLayout();
  }

  newCard(name) {
    const card = this.template.content.firstElementChild.cloneNode(true);
    const colour = backendColour(name);
    card.dataset.backend = name;
    card.style.setProperty("--c", colour);
    card.querySelector(".card-name").textContent = name;
    const swatch = card.querySelector(".swatch");
    swatch.textContent = backendLabel(name);
    swatch.style.color = inkOn(colour);
    for (const button of card.querySelectorAll("[data-act]")) button.dataset.name = name;
    card.querySelector('[data-act="lighter"]').setAttribute("aria-label", `Lower ${name}'s weight`);
    card.querySelector('[data-act="heavier"]').setAttribute("aria-label", `Raise ${name}'s weight`);
    card.querySelector('[data-act="remove"]').setAttribute("aria-label", `Remove ${name}`);
    card.querySelector('[data-act="remove"]').title = `remove ${name} from the lab`;
    return card;
  }

  fillCard(card, backend, pool, feed = "") {
    const name = backend.name;
    card.dataset.process = backend.process;
    card.dataset.weight = backend.weight;
    card.dataset.latency = backend.latency_ms;
    card.dataset.errorRate = backend.error_rate;
    card.dataset.limit = backend.max_concurrency || 0;
    card.dataset.cost = backend.latency_ms >= 100 ? "slow" : "fast";
    const tag = card.querySelector('[data-k="pool"]');
    tag.hidden = !pool;
    tag.textContent = pool ? `pool ${pool}` : "";
    tag.title = pool ? `pool ${pool} gets ${feed}` : "";
    card.querySelector('[data-k="feed"]').textContent = pool ? `← ${feed}` : "";
    card.dataset.pool = pool || "";
    card.querySelector('[data-k="weight"]').textContent = backend.weight;
    const knobs = [];
    if (backend.latency_ms) knobs.push(`+${backend.latency_ms} ms latency${backend.jitter_ms ? ` ±${backend.jitter_ms}` : ""}`);
    if (backend.error_rate) knobs.push(`${Math.round(backend.error_rate * 100)}% errors`);
    if (backend.max_concurrency) knobs.push(`works on ${backend.max_concurrency} at once`);
    card.querySelector('[data-k="knobs"]').textContent = knobs.join(" · ");
    const up = backend.process === "running";
    const kill = card.querySelector('[data-act="kill"]');
    kill.textContent = up ? "Kill" : "Restart";
    kill.classList.toggle("primary", !up);
    kill.setAttribute("aria-label", `${up ? "Kill" : "Restart"} ${name}`);
    this.toggle(card, "slow", up, backend.latency_ms, ["Fast", "remove the added latency", `Make ${name} fast`], ["Slow", `add ${SLOW_MS} ms to every request`, `Slow ${name} down by ${SLOW_MS} ms`]);
    this.toggle(card, "flaky", up, backend.error_rate, ["Reliable", "stop the errors", `Stop ${name}'s errors`], ["Flaky", `answer ${FLAKY_RATE * 100}% of requests with 500`, `Make ${name} fail ${FLAKY_RATE * 100}% of requests`]);
    this.toggle(card, "drain", up, backend.draining, ["Undrain", "take new requests again", `Undrain ${name}`], ["Drain", "no new requests; let the ones in flight finish", `Drain ${name}`]);
    card.querySelector('[data-act="lighter"]').disabled = backend.weight <= 1;
    fillHealth(card, backend);
  }

  toggle(card, act, up, on, [onText, onTitle, onLabel], [offText, offTitle, offLabel]) {
    const button = card.querySelector(`[data-act="${act}"]`);
    button.textContent = on ? onText : offText;
    button.title = on ? onTitle : offTitle;
    button.setAttribute("aria-label", on ? onLabel : offLabel);
    button.disabled = !up;
  }

  /** Exact numbers, and health between snapshots, from the newest counters. */
  renderCounters(counters) {
    const state = this.store.state;
    if (!counters || !state) return;
    for (const backend of state.backends) {
      const card = this.byName.get(backend.name);
      const numbers = counters.backends[backend.name];
      if (!card || !numbers) continue;
      const queued = backendQueue(backend, numbers, state.mode);
      set(card, "total", String(numbers.total));
      set(card, "active", String(Math.max(0, numbers.active - queued)));
      set(card, "queued", String(queued));
      card.classList.toggle("queueing", Boolean(backend.max_concurrency) && state.mode === "http");
      // At udp, routed and active count flows; the datagrams they carried are counted too.
      card.classList.toggle("udp", state.mode === "udp");
      set(card, "datagrams", String(numbers.datagrams || 0));
      set(card, "failures", String(numbers.failures));
      const ewma = numbers.ewma_ms;
      set(card, "ewma", ewma ? `${ewma < 10 ? ewma.toFixed(1) : Math.round(ewma)} ms` : "–");
      if (card.dataset.process === "running") fillHealth(card, numbers);
    }
  }

  onClick(event) {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const name = button.dataset.name;
    const backend = this.store.state && this.store.state.backends.find((b) => b.name === name);
    if (!backend) return;
    const command = (data) => this.store.command(data);
    const act = button.dataset.act;
    if (act === "kill") command({ action: backend.process === "running" ? "kill_backend" : "restart_backend", name });
    else if (act === "drain") command({ action: "drain_backend", name, draining: !backend.draining });
    else if (act === "slow") command({ action: "set_latency", name, latency_ms: backend.latency_ms ? 0 : SLOW_MS, jitter_ms: 0 });
    else if (act === "flaky") command({ action: "set_error_rate", name, error_rate: backend.error_rate ? 0 : FLAKY_RATE });
    else if (act === "lighter") command({ action: "set_weight", name, weight: backend.weight - 1 });
    else if (act === "heavier") command({ action: "set_weight", name, weight: backend.weight + 1 });
    else if (act === "remove") command({ action: "remove_backend", name });
  }
}

function set(card, key, value) {
  const cell = card.querySelector(`[data-k="${key}"]`);
  if (cell && cell.textContent !== value) cell.textContent = value;
}

/** Backend name -> the pool it serves in, when the balancer has pools beside its default. */
export function poolOf(state) {
  const pools = new Map();
  for (const pool of state.pools || []) {
    if (pool.name === "default" && (state.pools || []).length === 1) continue;
    for (const name of pool.backends) if (!pools.has(name)) pools.set(name, pool.name);
  }
  return pools;
}

// A rule's conditions, in the order the balancer's reasons name them; `sni` is the TLS
// server name (HTTPS passed through at Layer 4, or terminated at Layer 7).
const CONDITION_WORDS = [
  ["path_prefix", (v) => `path ${v}…`],
  ["host", (v) => `host ${v}`],
  ["sni", (v) => `SNI ${v}`],
  ["header", (v) => `header ${v}`],
  ["cookie", (v) => `cookie ${v}`],
  ["method", (v) => `method ${v}`],
];

function ruleWords(rule) {
  const words = CONDITION_WORDS.filter(([key]) => rule[key] != null).map(([key, say]) => say(rule[key]));
  return words.length ? words.join(" and ") : "any request";
}

/** Pool name -> the words for what sends requests there ("rule api: path /api…"). */
export function rulesFeeding(state) {
  const feeds = new Map();
  for (const rule of state.rules || []) {
    const what = ruleWords(rule);
    const said = `rule ${rule.name} (${what})`;
    feeds.set(rule.pool, feeds.has(rule.pool) ? `${feeds.get(rule.pool)}, ${said}` : said);
  }
  const others = "requests no rule matched";
  feeds.set("default", feeds.has("default") ? `${feeds.get("default")}, ${others}` : others);
  for (const pool of state.pools || []) if (!feeds.has(pool.name)) feeds.set(pool.name, "no rule: nothing is sent here");
  return feeds;
}

// A card's state word: the process's fate when it is not running (killed, down),
// otherwise the balancer's view (up, warming, down, draining, drained) and why.
function fillHealth(card, health) {
  if (!health.state || (card.dataset.state === health.state && card.dataset.reason === (health.reason || ""))) return;
  card.dataset.state = health.state;
  card.dataset.reason = health.reason || "";
  const badge = card.querySelector('[data-k="state"]');
  badge.textContent = health.state;
  badge.dataset.state = health.state;
  card.querySelector('[data-k="reason"]').textContent = health.state === "killed" ? "" : health.reason || "";
}
