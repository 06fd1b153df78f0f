// The decision log: the last routing decisions and why, newest first.
// Events only update a small array; the list is rebuilt at most five times a second.
//
// Each row is one line, so the log stays tidy on a projector; a reason too long for it ends
// in "…". Pointing at a row, or moving the keyboard focus to it (Tab), opens it to show the
// whole reason (lab.css), and the list holds still while it is read: under heavy traffic it
// would otherwise be replaced before anyone could read it. Escape lets it go.

import { backendColour, inkOn } from "./palette.js";

const KEEP = 7; // as many as the panel shows
const RENDER_EVERY_MS = 200;

export class DecisionLog {
  constructor(root, store, list = root.querySelector('[data-part="log"]')) {
    this.list = list;
    this.entries = []; // newest first: {id, backend, reason, mark, failed, sni}
    this.dirty = true;
    this.lastRender = 0;
    store.on("batch", (batch) => this.ingest(batch.events));
    // Rows about backends the lab no longer has (a lesson removed them) would only confuse.
    store.on("state", ({ state }) => this.keepOnly(new Set(state.backends.map((b) => b.name))));
    list.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && list.contains(document.activeElement)) document.activeElement.blur();
    });
  }

  /** True while a row is pointed at or focused: the list then holds still. */
  get held() {
    return this.list.matches(":hover") || this.list.contains(document.activeElement);
  }

  keepOnly(names) {
    const kept = this.entries.filter((e) => e.backend === "–" || names.has(e.backend));
    if (kept.length === this.entries.length) return;
    this.entries = kept;
    this.dirty = true;
    this.list.replaceChildren(...this.entries.map((entry) => this.item(entry))); // at once
  }

  clear() {
    this.entries = [];
    this.dirty = true;
    this.list.replaceChildren(); // at once, even while held
  }

  ingest(events) {
    for (const event of events) {
      if (event.type === "route") {
        // HTTPS: the name the client asked for in its ClientHello (all a Layer 4 balancer
        // passing TLS through can read of it).
        const sni = event.tls ? event.tls.sni || "no SNI" : "";
        this.add({ id: event.id, backend: event.backend, reason: event.reason, mark: "…", failed: false, sni });
      } else if (event.type === "done") {
        const entry = this.entries.find((e) => e.id === event.id && e.backend === event.backend);
        if (entry) {
          entry.failed = event.status != null && event.status >= 500;
          entry.mark = event.status == null ? "closed" : String(event.status);
          if (event.reason) entry.reason = `${entry.reason}; ${event.reason}`; // why a tunnel ended
          this.dirty = true;
        }
      } else if (event.type === "error") {
        const entry = this.entries.find((e) => e.id === event.id && e.backend === event.backend);
        if (entry && event.status == null) {
          Object.assign(entry, { failed: true, mark: "✕", reason: `${entry.reason}; ${event.reason}` });
          this.dirty = true;
        } else {
          this.add({ id: event.id, backend: event.backend || "–", reason: event.reason, mark: `✕ ${event.status ?? ""}`.trim(), failed: true });
        }
      } else if (event.type === "health") {
        // A backend in or out of service: as much a decision as a route, and rarer.
        const how = event.source === "passive" ? "passive health" : "health check";
        this.add({ id: "", backend: event.backend, reason: `${how}: ${event.reason}`, mark: event.healthy ? "▲ up" : "▼ down", failed: !event.healthy });
      } else if (event.type === "drain") {
        this.add({ id: "", backend: event.backend, reason: event.reason, mark: event.state, failed: false });
      } else if (event.type === "queue") {
        this.add({ id: event.id, backend: "–", reason: event.reason, mark: "queued", failed: false });
      }
    }
  }

  add(entry) {
    this.entries.unshift(entry);
    if (this.entries.length > KEEP) this.entries.length = KEEP;
    this.dirty = true;
  }

  render(now) {
    if (!this.dirty || now - this.lastRender < RENDER_EVERY_MS || this.held) return;
    this.dirty = false;
    this.lastRender = now;
    this.list.replaceChildren(...this.entries.map((entry) => this.item(entry)));
  }

  item(entry) {
    const li = document.createElement("li");
    li.className = entry.failed ? "failed" : "";
    li.tabIndex = 0; // focus opens the row to its whole reason
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = entry.backend;
    if (entry.backend !== "–" && !entry.failed) {
      const colour = backendColour(entry.backend);
      who.style.setProperty("--c", colour);
      who.style.setProperty("--ink-on", inkOn(colour));
    }
    const why = document.createElement("span");
    why.className = "why";
    why.textContent = entry.reason;
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.textContent = entry.failed && !entry.mark.startsWith("✕") ? `✕ ${entry.mark}` : entry.mark;
    if (entry.sni) {
      const sni = document.createElement("span");
      sni.className = "sni";
      sni.title = "HTTPS: the server name the client asked for (SNI)";
      sni.textContent = entry.sni;
      why.prepend(sni, " ");
    }
    li.append(who, why, mark);
    return li;
  }
}
