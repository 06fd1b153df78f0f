// The header and the toolbar of one lab: connection, totals, the message banner, the
// balancer, watch and traffic controls, and step mode. Built on the lab's root element and
// fed by its store; every element is found inside the root by data-part.

import { MODE_WORDS, sayRefusal } from "./words.js";

const NAVIGATION_KEYS = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown"]);
const TRAFFIC_PARTS = ["rate", "clients", "keep-alive", "pause", "send-1", "send-10", "step"];

export class Controls {
  constructor(root, store, { scene }) {
    this.root = root;
    this.store = store;
    this.scene = scene;
    this.part = (name) => root.querySelector(`[data-part="${name}"]`);
    // `armed`: show the next decisions (a Step was pressed here or, `steps` says, elsewhere).
    this.step = { on: false, speedBefore: "1", armed: false, steps: null, last: null, pending: false };
    this.browsing = false; // the algorithm list is being walked with the keyboard
    store.on("state", ({ state }) => this.renderState(state));
    store.on("answer", ({ data, answer }) => this.onAnswer(data, answer));
    store.on("connection", (status) => this.renderConnection(status));
    store.on("batch", (batch) => this.step.on && this.showStep(batch.events));
    // Step mode is lab state (lab/web/room.py): every page shows it, whoever turned it on.
    store.on("classroom", ({ classroom }) => {
      this.renderStep(classroom.step);
      this.noteSteps(classroom.steps);
    });
    this.wire();
  }

  // -- the banner --------------------------------------------------------------------------

  showMessage(text) {
    this.part("message-text").textContent = text;
    this.part("message").hidden = false;
  }

  hideMessage() {
    this.part("message").hidden = true;
  }

  onAnswer(data, answer) {
    if (answer.ok) {
      this.hideMessage();
      for (const field of this.root.querySelectorAll("[aria-invalid='true']")) field.removeAttribute("aria-invalid");
    } else {
      this.showMessage(sayRefusal(data, answer.error));
    }
  }

  renderConnection(status) {
    const pill = this.part("connection");
    pill.dataset.state = status;
    pill.textContent = status === "connected" ? "connected" : status === "disconnected" ? "disconnected: reconnecting…" : status;
  }

  // -- state -------------------------------------------------------------------------------

  renderState(state) {
    const select = this.part("algorithm");
    if (select.options.length !== state.algorithms.length) {
      select.replaceChildren(...state.algorithms.map((name) => new Option(name, name)));
    }
    if (!this.browsing) select.value = state.algorithm;
    const hashing = state.algorithm === "consistent-hash" || state.algorithm === "ip-hash";
    // Kept in the layout either way (visibility), so the toolbar never jumps.
    this.part("hash-key-form").classList.toggle("off", !hashing);
    this.part("hash-key-form").inert = !hashing;
    const keys = this.part("hash-keys");
    if (keys && keys.options.length !== state.hash_keys.length) {
      keys.replaceChildren(...state.hash_keys.map((key) => new Option(key, key)));
    }
    const hashKey = this.part("hash-key");
    if (document.activeElement !== hashKey && hashKey.getAttribute("aria-invalid") !== "true") hashKey.value = state.hash_key;
    for (const radio of this.part("modes").querySelectorAll("input")) radio.checked = radio.value === state.mode;
    this.part("balancer-algorithm").textContent = state.algorithm;
    this.part("balancer-mode").textContent = MODE_WORDS[state.mode] || MODE_WORDS.http;
    this.part("add-backend").disabled = state.backends.length >= state.max_backends;
    this.renderTraffic(state.traffic);
    if (state.problem) this.showMessage(`The lab is broken: ${state.problem}`);
  }

  renderTraffic(traffic) {
    for (const name of TRAFFIC_PARTS) this.part(name).disabled = !traffic.available;
    const pause = this.part("pause");
    if (!traffic.available) {
      pause.textContent = "Pause";
      return;
    }
    for (const [name, value] of [["rate", traffic.rate], ["clients", traffic.clients]]) {
      const input = this.part(name);
      // A value the lab refused stays, marked, so it can be corrected.
      if (document.activeElement !== input && input.getAttribute("aria-invalid") !== "true") input.value = value;
    }
    this.part("keep-alive").checked = traffic.keep_alive;
    pause.textContent = traffic.paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(traffic.paused));
    this.scene.setClients(traffic.clients);
    const label = this.part("clients-label");
    const clients = `${traffic.clients} ${traffic.clients === 1 ? "client" : "clients"}`;
    const unit = traffic.protocol === "udp" ? "datagrams/s" : "req/s";
    label.textContent = `${clients} · ${+traffic.rate.toFixed(2)} ${unit} `;
    // Where 127.0.0.2 and up cannot be bound (macOS), each client names itself in a PROXY header.
    const proxy = String(traffic.client_addresses || "").startsWith("proxy");
    label.title = proxy
      ? "each client names its own address (127.0.0.k+1) in a PROXY protocol header, which the balancer reads"
      : "each client sends from its own address, 127.0.0.k+1";
    if (proxy) label.append("· addresses by PROXY header ");
    if (traffic.paused) label.append(Object.assign(document.createElement("b"), { textContent: "· paused" }));
  }

  /** The header's totals: what the balancer routed, and what the clients saw. */
  renderTotals(counters) {
    const traffic = counters.traffic;
    const ms = (v) => (v == null ? "–" : `${+v.toFixed(1)} ms`);
    const udp = this.store.state && this.store.state.mode === "udp" && counters.udp;
    // At udp a routing decision is a flow: count flows (and their datagrams), not requests.
    const parts = udp ? [["flows", counters.total], ["datagrams", udp.datagrams_up]] : [["routed", counters.total]];
    if (traffic) {
      // Failed = what the clients saw (no answer, or a 5xx); a refusal the balancer retried
      // elsewhere is not a failure, and is counted apart.
      parts.push(["failed", traffic.failed + (traffic.status["5xx"] || 0)]);
    } else {
      parts.push(["failed", counters.failures]);
    }
    if (udp) parts.push(["live flows", udp.flows]);
    else parts.push(["retries", (counters.errors && counters.errors.retry) || 0], ["in flight", counters.active]);
    if (traffic) parts.push(["p50", ms(traffic.latency_ms.p50)], ["p95", ms(traffic.latency_ms.p95)]);
    const totals = this.part("totals");
    if (totals.children.length !== parts.length) {
      totals.replaceChildren(...parts.map(() => {
        const span = document.createElement("span");
        span.append(document.createTextNode(""), document.createElement("b"), document.createTextNode("  "));
        return span;
      }));
    }
    parts.forEach(([label, value], i) => {
      const span = totals.children[i];
      span.dataset.total = label;
      if (span.childNodes[0].textContent !== `${label} `) span.childNodes[0].textContent = `${label} `;
      if (span.childNodes[1].textContent !== String(value)) span.childNodes[1].textContent = String(value);
    });
  }

  // -- controls ----------------------------------------------------------------------------

  command(data, field = null) {
    return this.store.command(data).then((answer) => {
      if (!answer.ok && field) field.setAttribute("aria-invalid", "true");
      else if (!answer.ok && this.store.state) this.renderState(this.store.state);
      return answer;
    });
  }

  wire() {
    const on = (name, kind, handler) => this.part(name).addEventListener(kind, handler);
    this.wireAlgorithm();
    on("hash-key-form", "submit", (e) => {
      e.preventDefault();
      this.command({ action: "set_hash_key", hash_key: this.part("hash-key").value }, this.part("hash-key"));
    });
    for (const radio of this.part("modes").querySelectorAll("input")) {
      radio.addEventListener("change", () => this.command({ action: "set_mode", mode: radio.value }));
    }
    on("traffic-form", "submit", (e) => {
      e.preventDefault();
      const rate = this.part("rate");
      const clients = this.part("clients");
      this.store.command({ action: "set_traffic", rate: numberOrText(rate.value), clients: numberOrText(clients.value) }).then((answer) => {
        if (answer.ok) return;
        // Mark the field the lab named; keep what was typed so it can be fixed.
        const named = /^clients/.test(answer.error) ? clients : /^rate/.test(answer.error) ? rate : null;
        for (const field of named ? [named] : [rate, clients]) field.setAttribute("aria-invalid", "true");
      });
    });
    on("keep-alive", "change", (e) => this.command({ action: "set_traffic", keep_alive: e.target.checked }));
    on("pause", "click", () => this.command({ action: this.store.state.traffic.paused ? "resume" : "pause" }));
    on("send-1", "click", () => this.command({ action: "send", count: 1 }));
    on("send-10", "click", () => this.command({ action: "send", count: 10 }));
    on("step", "click", () => {
      this.step.armed = true;
      this.command({ action: "step" });
    });
    on("add-backend", "click", () => this.command({ action: "add_backend" }));
    on("reset", "click", () => this.command({ action: "reset" }));
    on("speed", "change", (e) => {
      this.scene.speed = Number(e.target.value);
    });
    on("step-mode", "change", async (e) => {
      // Until the lab answers, a classroom message sent before the click must not undo it.
      this.step.pending = true;
      const answer = await this.command({ action: "set_step", on: e.target.checked });
      this.step.pending = false;
      if (!answer.ok && this.store.classroom) e.target.checked = this.store.classroom.step;
    });
    on("message-close", "click", () => this.hideMessage());
  }

  /** The algorithm applies on a pick (mouse, or Enter), not on each arrow key's stop. */
  wireAlgorithm() {
    const select = this.part("algorithm");
    const apply = () => {
      this.browsing = false;
      if (this.store.state && select.value !== this.store.state.algorithm) {
        this.command({ action: "set_algorithm", algorithm: select.value });
      }
    };
    select.addEventListener("keydown", (e) => {
      if (NAVIGATION_KEYS.has(e.key)) this.browsing = true;
      else if (e.key === "Enter") {
        e.preventDefault();
        apply();
      } else if (e.key === "Escape" && this.store.state) {
        this.browsing = false;
        select.value = this.store.state.algorithm;
      }
    });
    select.addEventListener("change", () => {
      if (!this.browsing) apply();
    });
    select.addEventListener("blur", () => {
      // Walked past but never picked: show the lab's real algorithm again.
      if (this.browsing && this.store.state) select.value = this.store.state.algorithm;
      this.browsing = false;
    });
  }

  /** Show step mode as the lab has it: the Step button, the decision box, a slower speed. */
  renderStep(on) {
    const step = this.step;
    if (!step.pending) this.part("step-mode").checked = on;
    if (on === step.on) return;
    step.on = on;
    this.part("step").dataset.off = String(!on);
    this.part("step").tabIndex = on ? 0 : -1;
    this.part("step-reason").hidden = !on;
    const speed = this.part("speed"); // the speed is this page's own: it comes back after
    step.armed = false;
    if (on) {
      step.speedBefore = speed.value;
      speed.value = "0.25";
      this.part("step-route").textContent = "Press “Step: send one” to send one request";
      this.part("step-why").textContent = "";
    } else {
      speed.value = step.speedBefore;
    }
    this.scene.speed = Number(speed.value);
  }

  /** Another page pressed Step: show its decision (it may have come a moment ago). */
  noteSteps(steps) {
    const step = this.step;
    const more = step.steps !== null && steps > step.steps;
    step.steps = steps;
    if (!more || !step.on || step.armed) return;
    step.armed = true;
    if (step.last && performance.now() - step.last.at < 1000) this.showStep(step.last.events);
  }

  /** Step mode shows the decision of a Step, never one of the traffic before it held. */
  showStep(events) {
    const step = this.step;
    if (events.some((e) => e.type === "route")) step.last = { events, at: performance.now() };
    if (!step.armed) return;
    const last = [...events].reverse().find((e) => e.type === "route" || (e.type === "error" && e.status != null));
    if (!last) return;
    const where = last.type === "route" ? `${last.id}: ${last.method || "connection"} ${last.path || ""} → ${last.backend}` : `${last.id}: answered ${last.status}`;
    this.part("step-route").textContent = where;
    this.part("step-why").textContent = last.reason;
  }
}

function numberOrText(value) {
  const trimmed = value.trim();
  return trimmed !== "" && Number.isFinite(Number(trimmed)) ? Number(trimmed) : trimmed;
}
