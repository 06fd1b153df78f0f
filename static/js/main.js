// The lab page: one Socket.IO connection, one requestAnimationFrame loop.
//
// The server sends `state` (a full snapshot, on connect and after every change) and
// `batch` (events to draw and exact counters, about every 50 ms); the page sends
// `command` and shows any refusal. Shapes: see lab/web/app.py.

import { Scene, MAX_DOTS } from "./scene.js";
import { drawBars, drawLatency } from "./charts.js";
import { DecisionLog } from "./log.js";
import { backendColour, backendLabel, inkOn } from "./palette.js";

const SLOW_MS = 300; // what the card's "Slow" button adds to a backend
const FLAKY_RATE = 0.3;
const ANSWER_TIMEOUT_MS = 15000;
const $ = (id) => document.getElementById(id);

const view = {
  state: null,
  counters: null,
  history: [],
  latencyNow: null, // the second still running, so the chart shows answers the header shows
  pendingCounters: null, // the latest batch's, shown at the next panel refresh
  panelsAt: 0,
  omitted: 0,
  stepMode: false,
  speedBeforeStep: "1",
  pausedBeforeStep: false,
  barsDirty: true,
  latencyDirty: true,
};

const scene = new Scene($("scene-canvas"), $("scene"));
const log = new DecisionLog($("log"));
const socket = window.io({ transports: ["websocket", "polling"] });

// -- commands ---------------------------------------------------------------------------

/** Send one command; resolve with its acknowledgement, showing a refusal on the page. */
function command(data) {
  return new Promise((resolve) => {
    socket.timeout(ANSWER_TIMEOUT_MS).emit("command", data, (err, ack) => {
      const answer = err ? { ok: false, error: "the lab did not answer (is it still running?)" } : ack;
      if (answer.ok) hideMessage();
      else showMessage(`${data.action}: ${answer.error}`);
      resolve(answer);
    });
  });
}

function showMessage(text) {
  $("message-text").textContent = text;
  $("message").hidden = false;
}

function hideMessage() {
  $("message").hidden = true;
}

// -- state ------------------------------------------------------------------------------

function renderState(state) {
  view.state = state;
  const select = $("algorithm");
  if (select.options.length !== state.algorithms.length) {
    select.replaceChildren(...state.algorithms.map((name) => new Option(name, name)));
  }
  select.value = state.algorithm;
  $("hash-key-form").hidden = state.algorithm !== "consistent-hash";
  if (document.activeElement !== $("hash-key")) $("hash-key").value = state.hash_key;
  for (const radio of document.querySelectorAll('input[name="mode"]')) radio.checked = radio.value === state.mode;
  $("balancer-algorithm").textContent = state.algorithm;
  $("balancer-mode").textContent = state.mode === "tcp" ? "Layer 4 · TCP connections" : "Layer 7 · HTTP requests";
  renderTraffic(state.traffic);
  $("add-backend").disabled = state.backends.length >= state.max_backends;
  renderCards(state.backends);
  view.history = state.latency_history.slice();
  view.latencyDirty = true;
  // A state read before a batch may arrive after it: keep whichever counters are newer
  // (renderCards just wrote the state's numbers, so the newer ones go on top again).
  const latest = view.pendingCounters || view.counters;
  view.pendingCounters = null;
  renderCounters(latest && latest.read > state.counters.read ? latest : state.counters);
  if (state.problem) showMessage(`The lab is broken: ${state.problem}`);
}

function renderTraffic(traffic) {
  for (const id of ["rate", "clients", "keep-alive", "pause", "send-1", "send-10", "step"]) {
    $(id).disabled = !traffic.available;
  }
  if (!traffic.available) {
    $("pause").textContent = "Pause";
    return;
  }
  if (document.activeElement !== $("rate")) $("rate").value = traffic.rate;
  if (document.activeElement !== $("clients")) $("clients").value = traffic.clients;
  $("keep-alive").checked = traffic.keep_alive;
  $("pause").textContent = traffic.paused ? "Resume" : "Pause";
  $("pause").setAttribute("aria-pressed", String(traffic.paused));
  scene.setClients(traffic.clients);
  const label = $("clients-label");
  label.textContent = `${traffic.clients} clients · ${+traffic.rate.toFixed(2)} req/s `;
  if (traffic.paused) label.append(Object.assign(document.createElement("b"), { textContent: "· paused" }));
}

function renderCards(backends) {
  const holder = $("backends");
  const wanted = new Set(backends.map((b) => b.name));
  for (const card of [...holder.children]) if (!wanted.has(card.dataset.backend)) card.remove();
  backends.forEach((backend, i) => {
    let card = holder.querySelector(`[data-backend="${backend.name}"]`);
    if (!card) card = newCard(backend.name);
    if (holder.children[i] !== card) holder.insertBefore(card, holder.children[i] || null);
    fillCard(card, backend);
  });
  holder.classList.toggle("many", backends.length > 6);
  scene.invalidateLayout();
}

function newCard(name) {
  const card = $("card-template").content.firstElementChild.cloneNode(true);
  const colour = backendColour(name);
  card.dataset.backend = name;
  card.style.setProperty("--c", colour);
  card.querySelector(".card-name").textContent = name;
  const swatch = card.querySelector(".swatch");
  swatch.textContent = backendLabel(name);
  swatch.style.color = inkOn(colour);
  for (const button of card.querySelectorAll("[data-act]")) {
    button.dataset.name = name;
  }
  card.querySelector('[data-act="lighter"]').setAttribute("aria-label", `Lower ${name}'s weight`);
  card.querySelector('[data-act="heavier"]').setAttribute("aria-label", `Raise ${name}'s weight`);
  card.querySelector('[data-act="remove"]').setAttribute("aria-label", `Remove ${name}`);
  card.querySelector('[data-act="remove"]').title = `remove ${name} from the lab`;
  return card;
}

function fillCard(card, backend) {
  const name = backend.name;
  card.dataset.process = backend.process;
  fillHealth(card, backend);
  card.dataset.weight = backend.weight;
  card.dataset.latency = backend.latency_ms;
  card.dataset.errorRate = backend.error_rate;
  card.querySelector('[data-k="weight"]').textContent = backend.weight;
  const knobs = [];
  if (backend.latency_ms) knobs.push(`+${backend.latency_ms} ms latency${backend.jitter_ms ? ` ±${backend.jitter_ms}` : ""}`);
  if (backend.error_rate) knobs.push(`${Math.round(backend.error_rate * 100)}% errors`);
  card.querySelector('[data-k="knobs"]').textContent = knobs.join(" · ");
  const up = backend.process === "running";
  const kill = card.querySelector('[data-act="kill"]');
  kill.textContent = up ? "Kill" : "Restart";
  kill.classList.toggle("primary", !up);
  kill.setAttribute("aria-label", `${up ? "Kill" : "Restart"} ${name}`);
  const slow = card.querySelector('[data-act="slow"]');
  slow.textContent = backend.latency_ms ? "Fast" : "Slow";
  slow.title = backend.latency_ms ? "remove the added latency" : `add ${SLOW_MS} ms to every request`;
  slow.setAttribute("aria-label", backend.latency_ms ? `Make ${name} fast` : `Slow ${name} down by ${SLOW_MS} ms`);
  slow.disabled = !up;
  const flaky = card.querySelector('[data-act="flaky"]');
  flaky.textContent = backend.error_rate ? "Reliable" : "Flaky";
  flaky.title = backend.error_rate ? "stop the errors" : `answer ${FLAKY_RATE * 100}% of requests with 500`;
  flaky.setAttribute("aria-label", backend.error_rate ? `Stop ${name}'s errors` : `Make ${name} fail ${FLAKY_RATE * 100}% of requests`);
  flaky.disabled = !up;
  const drain = card.querySelector('[data-act="drain"]');
  drain.textContent = backend.draining ? "Undrain" : "Drain";
  drain.title = backend.draining ? "take new requests again" : "no new requests; let the ones in flight finish";
  drain.setAttribute("aria-label", `${backend.draining ? "Undrain" : "Drain"} ${name}`);
  drain.disabled = !up;
  card.querySelector('[data-act="lighter"]').disabled = backend.weight <= 1;
  fillNumbers(card, backend);
}

// A card's state word: the process's fate when it is not running (killed, down),
// otherwise the balancer's view (up, warming, down, draining, drained) and why.
function fillHealth(card, health) {
  if (!health.state || card.dataset.state === health.state && card.dataset.reason === (health.reason || "")) return;
  card.dataset.state = health.state;
  card.dataset.reason = health.reason || "";
  const badge = card.querySelector('[data-k="state"]');
  badge.textContent = health.state;
  badge.dataset.state = health.state;
  card.querySelector('[data-k="reason"]').textContent = health.state === "killed" ? "" : health.reason || "";
}

function fillNumbers(card, numbers) {
  const set = (key, value) => {
    const cell = card.querySelector(`[data-k="${key}"]`);
    if (cell.textContent !== value) cell.textContent = value;
  };
  set("total", String(numbers.total));
  set("active", String(numbers.active));
  set("failures", String(numbers.failures));
  set("ewma", numbers.ewma_ms ? `${numbers.ewma_ms < 10 ? numbers.ewma_ms.toFixed(1) : Math.round(numbers.ewma_ms)} ms` : "–");
}

function renderCounters(counters) {
  if (!counters || !counters.backends) return;
  view.counters = counters;
  for (const [name, numbers] of Object.entries(counters.backends)) {
    const card = $("backends").querySelector(`[data-backend="${name}"]`);
    if (!card) continue;
    fillNumbers(card, numbers);
    // Health changes between snapshots arrive with the counters.
    if (card.dataset.process === "running") fillHealth(card, numbers);
  }
  const traffic = counters.traffic;
  const ms = (v) => (v == null ? "–" : `${+v.toFixed(1)} ms`);
  const parts = [
    ["routed", counters.total],
    ["failures", counters.failures],
    ["in flight", counters.active],
  ];
  if (traffic) parts.push(["p50", ms(traffic.latency_ms.p50)], ["p95", ms(traffic.latency_ms.p95)]);
  const totals = $("totals");
  if (totals.children.length !== parts.length) {
    totals.replaceChildren(...parts.map(() => {
      const span = document.createElement("span");
      span.append(document.createTextNode(""), document.createElement("b"), document.createTextNode("  "));
      return span;
    }));
  }
  parts.forEach(([label, value], i) => {
    const span = totals.children[i];
    span.childNodes[0].textContent = `${label} `;
    span.childNodes[1].textContent = String(value);
  });
  view.barsDirty = true;
}

// -- batches ----------------------------------------------------------------------------

function onBatch(batch) {
  scene.ingest(batch.events);
  log.ingest(batch.events);
  if (view.stepMode) showStep(batch.events);
  view.omitted += batch.omitted;
  if (batch.latency.length) {
    view.history = view.history.concat(batch.latency).slice(-60);
    view.latencyDirty = true;
  }
  // The running second is redrawn when it starts or ends; in between it rides along with
  // the next redraw, so heavy traffic does not redraw the chart with every batch.
  const now = batch.latency_now ?? null;
  if ((now && now.t) !== (view.latencyNow && view.latencyNow.t)) view.latencyDirty = true;
  view.latencyNow = now;
  // Counters read before the newest ones here (a state overtook this batch) are old news.
  const newest = view.pendingCounters || view.counters;
  if (!newest || batch.counters.read >= newest.read) view.pendingCounters = batch.counters;
}

function showStep(events) {
  const last = [...events].reverse().find((e) => e.type === "route" || (e.type === "error" && e.status != null));
  if (!last) return;
  const where = last.type === "route" ? `${last.id}: ${last.method || "connection"} ${last.path || ""} → ${last.backend}` : `${last.id}: answered ${last.status}`;
  $("step-route").textContent = where;
  $("step-why").textContent = last.reason;
}

// -- controls ---------------------------------------------------------------------------

function wireControls() {
  $("algorithm").addEventListener("change", (e) => command({ action: "set_algorithm", algorithm: e.target.value }).then(restoreOnFailure));
  $("hash-key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    command({ action: "set_hash_key", hash_key: $("hash-key").value }).then(restoreOnFailure);
  });
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => command({ action: "set_mode", mode: radio.value }).then(restoreOnFailure));
  }
  $("traffic-form").addEventListener("submit", (e) => {
    e.preventDefault();
    command({ action: "set_traffic", rate: numberOrText($("rate").value), clients: numberOrText($("clients").value) }).then(restoreOnFailure);
  });
  $("keep-alive").addEventListener("change", (e) => command({ action: "set_traffic", keep_alive: e.target.checked }).then(restoreOnFailure));
  $("pause").addEventListener("click", () => command({ action: view.state.traffic.paused ? "resume" : "pause" }));
  $("send-1").addEventListener("click", () => command({ action: "send", count: 1 }));
  $("send-10").addEventListener("click", () => command({ action: "send", count: 10 }));
  $("step").addEventListener("click", () => command({ action: "send", count: 1 }));
  $("add-backend").addEventListener("click", () => command({ action: "add_backend" }));
  $("reset").addEventListener("click", () => {
    log.clear();
    view.omitted = 0;
    command({ action: "reset" });
  });
  $("speed").addEventListener("change", (e) => {
    scene.speed = Number(e.target.value);
  });
  $("step-mode").addEventListener("change", (e) => setStepMode(e.target.checked));
  $("backends").addEventListener("click", onCardClick);
  $("message-close").addEventListener("click", hideMessage);
}

/** An input that could not be applied shows the lab's real setting again. */
function restoreOnFailure(answer) {
  if (!answer.ok && view.state) renderState(view.state);
}

function numberOrText(value) {
  const trimmed = value.trim();
  return trimmed !== "" && Number.isFinite(Number(trimmed)) ? Number(trimmed) : trimmed;
}

function onCardClick(event) {
  const button = event.target.closest("button[data-act]");
  if (!button) return;
  const name = button.dataset.name;
  const backend = view.state.backends.find((b) => b.name === name);
  if (!backend) return;
  const act = button.dataset.act;
  if (act === "kill") command({ action: backend.process === "running" ? "kill_backend" : "restart_backend", name });
  else if (act === "drain") command({ action: "drain_backend", name, draining: !backend.draining });
  else if (act === "slow") command({ action: "set_latency", name, latency_ms: backend.latency_ms ? 0 : SLOW_MS, jitter_ms: 0 });
  else if (act === "flaky") command({ action: "set_error_rate", name, error_rate: backend.error_rate ? 0 : FLAKY_RATE });
  else if (act === "lighter") command({ action: "set_weight", name, weight: backend.weight - 1 });
  else if (act === "heavier") command({ action: "set_weight", name, weight: backend.weight + 1 });
  else if (act === "remove") command({ action: "remove_backend", name });
}

async function setStepMode(on) {
  view.stepMode = on;
  $("step").hidden = !on;
  $("step-reason").hidden = !on;
  const speed = $("speed");
  if (on) {
    view.speedBeforeStep = speed.value;
    view.pausedBeforeStep = Boolean(view.state && view.state.traffic.paused);
    speed.value = "0.25";
    $("step-route").textContent = "Press “Step: send one” to send one request";
    $("step-why").textContent = "";
    if (!view.pausedBeforeStep) await command({ action: "pause" });
  } else {
    speed.value = view.speedBeforeStep;
    if (!view.pausedBeforeStep) await command({ action: "resume" });
  }
  scene.speed = Number(speed.value);
}

// -- the loop ---------------------------------------------------------------------------

// Numbers, the log and the charts change together, five times a second, not with each
// batch: a browser without a GPU redraws the whole page in any frame that changes more than
// the scene, and at 20 batches a second that cost more than the animation (lb-lab bench --web).
const PANELS_EVERY_MS = 200;

function loop(now) {
  scene.frame(now);
  if (now - view.panelsAt < PANELS_EVERY_MS) {
    requestAnimationFrame(loop);
    return;
  }
  view.panelsAt = now;
  if (view.pendingCounters) renderCounters(view.pendingCounters);
  view.pendingCounters = null;
  log.render(now);
  const drawn = view.omitted + scene.skipped;
  const note = drawn ? `sampled: ${drawn} not drawn, all counted` : "";
  if ($("log-note").textContent !== note) $("log-note").textContent = note;
  if (view.barsDirty && view.state) {
    const rows = view.state.backends.map((b) => ({ name: b.name, ...(view.counters?.backends[b.name] || b) }));
    drawBars($("bars"), rows);
    view.barsDirty = false;
  }
  if (view.latencyDirty) {
    drawLatency($("latency"), view.history, view.latencyNow);
    view.latencyDirty = false;
  }
  requestAnimationFrame(loop);
}

function start() {
  const motion = window.matchMedia("(prefers-reduced-motion: reduce)");
  scene.reduced = motion.matches;
  motion.addEventListener("change", () => {
    scene.reduced = motion.matches;
  });
  new ResizeObserver(() => {
    scene.invalidateLayout();
    view.barsDirty = true;
    view.latencyDirty = true;
  }).observe($("scene"));
  new ResizeObserver(() => scene.invalidateLayout()).observe($("backends"));
  wireControls();
  socket.on("connect", () => {
    $("connection").dataset.state = "connected";
    $("connection").textContent = "connected";
  });
  socket.on("disconnect", () => {
    $("connection").dataset.state = "disconnected";
    $("connection").textContent = "disconnected: reconnecting…";
  });
  socket.on("state", renderState);
  socket.on("batch", onBatch);
  // For lessons and for a curious learner's console: the same command the buttons send.
  // lessons.js listens on the same socket (state for its config snippets, batches for predictions).
  window.lab = { command, view, scene, maxDots: MAX_DOTS, socket };
  requestAnimationFrame(loop);
}

start();
