// One lab's page: its components built on a root element and fed by one store, and the one
// requestAnimationFrame loop that draws them. Nothing here is global: two roots with two
// stores (two labs, or a recording) are two LabPages.
//
// The test and benchmark hook is deliberate and the only one: `root.lab` holds this page's
// store and scene (`document.querySelector("[data-lab]").lab` in a test or the console).

import { Scene, MAX_DOTS } from "./scene.js";
import { Charts } from "./charts.js";
import { DecisionLog } from "./log.js";
import { Cards, backendQueue } from "./cards.js";
import { Controls } from "./controls.js";
import { RunHistory } from "./history.js";
import { LessonPanel } from "./lessons/panel.js";
import { Moves } from "./moves.js";
import { Classroom } from "./classroom.js";
import { RecordButton } from "./recorder.js";
import { Https } from "./https.js";

// Numbers, the log and the charts change together, five times a second, not with each
// batch: a browser without a GPU redraws the whole page in any frame that changes more than
// the scene, and at 20 batches a second that cost more than the animation (lb-lab bench --web).
const PANELS_EVERY_MS = 200;

export class LabPage {
  constructor(root, store) {
    this.root = root;
    this.store = store;
    this.part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.panelsAt = 0;
    this.countersDirty = true;
    this.scene = new Scene(root);
    this.cards = new Cards(root, store, { onLayout: () => this.scene.invalidateLayout() });
    this.controls = new Controls(root, store, { scene: this.scene });
    this.log = new DecisionLog(root, store);
    // After Controls: it words the balancer box's mode line, HTTPS then adds to it.
    this.https = new Https(root, store, { command: (data) => this.controls.command(data) });
    this.charts = new Charts(root, store);
    this.history = new RunHistory(root, store);
    this.moves = new Moves(root, store, this.scene);
    this.lessons = new LessonPanel(root, store, { history: this.history, onToggle: () => this.relayout() });
    this.recorder = new RecordButton(root, store);
    this.classroom = new Classroom(root, store, { lessons: this.lessons, page: this });
    store.on("batch", (batch) => this.scene.ingest(batch.events));
    store.on("counters", () => {
      this.countersDirty = true;
    });
    store.on("command", (data) => {
      if (data.action === "reset") {
        this.log.clear();
        store.forgetHistory();
      }
    });
    store.on("state", ({ state }) => {
      this.scene.udp.setSettings(state.udp);
      this.relayout();
    });
    this.part("default-lab").addEventListener("click", () => this.defaultLab());
    this.wirePresenter();
    root.lab = { store, scene: this.scene, moves: this.moves, maxDots: MAX_DOTS, command: (data) => store.command(data) };
  }

  async defaultLab() {
    const answer = await this.store.command({ action: "default_lab" });
    if (answer.ok) this.lessons.leave();
  }

  relayout() {
    this.scene.invalidateLayout();
    this.charts.invalidate();
  }

  // -- presenter view ----------------------------------------------------------------------

  wirePresenter() {
    const toggle = this.part("presenter-toggle");
    const url = new URL(location.href);
    const wanted = ["1", "true", "on", ""].includes(url.searchParams.get("presenter") ?? "no");
    this.setPresenter(wanted);
    toggle.addEventListener("click", () => this.setPresenter(!this.root.classList.contains("presenter")));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.lessons.open && !event.defaultPrevented && !this.part("lesson-panel").contains(event.target)) {
        if (event.target.closest && event.target.closest("select, input, .log")) return;
        this.lessons.close();
      }
    });
  }

  /** Large type, high contrast and only the controls a lesson needs, for a projector. */
  setPresenter(on) {
    this.root.classList.toggle("presenter", on);
    document.documentElement.classList.toggle("presenting", on);
    const toggle = this.part("presenter-toggle");
    toggle.setAttribute("aria-pressed", String(on));
    toggle.textContent = on ? "Leave presenter view" : "Presenter view";
    const url = new URL(location.href);
    if (on) url.searchParams.set("presenter", "1");
    else url.searchParams.delete("presenter");
    if (url.href !== location.href) history.replaceState(history.state, "", url);
    this.relayout();
  }

  // -- the loop ----------------------------------------------------------------------------

  queues() {
    const { state, counters } = this.store;
    const queues = new Map();
    if (!state || !counters) return queues;
    for (const backend of state.backends) {
      const numbers = counters.backends[backend.name];
      const waiting = numbers ? backendQueue(backend, numbers, state.mode) : 0;
      if (waiting) queues.set(backend.name, waiting);
    }
    const pooled = Object.values(counters.queued || {}).reduce((sum, n) => sum + n, 0);
    if (pooled) queues.set("", pooled);
    return queues;
  }

  renderPanels(now) {
    const { counters } = this.store;
    if (this.countersDirty && counters) {
      this.controls.renderTotals(counters);
      this.cards.renderCounters(counters);
      const queues = this.queues();
      this.scene.setQueues(queues);
      const waiting = queues.get("") || 0;
      const line = this.part("balancer-queue");
      line.hidden = !waiting;
      line.textContent = waiting ? `${waiting} waiting for a free slot (max_conns)` : "";
      this.countersDirty = false;
    }
    this.log.render(now);
    const drawn = this.store.omitted + this.scene.skipped;
    const note = drawn ? `sampled: ${drawn} not drawn, all counted` : "";
    const noteEl = this.part("log-note");
    if (noteEl.textContent !== note) noteEl.textContent = note;
    this.charts.render();
    this.moves.render();
  }

  /** Draw from now on; `lessons: false` (a recording) leaves the course unloaded. */
  start({ lessons = true } = {}) {
    const motion = window.matchMedia("(prefers-reduced-motion: reduce)");
    this.scene.reduced = motion.matches;
    motion.addEventListener("change", () => {
      this.scene.reduced = motion.matches;
    });
    new ResizeObserver(() => this.relayout()).observe(this.part("scene"));
    new ResizeObserver(() => this.scene.invalidateLayout()).observe(this.part("backends"));
    // The cards scroll in their own region; the dots follow them to its edge.
    this.part("backends").addEventListener("scroll", () => this.scene.invalidateLayout(), { passive: true });
    const loop = (now) => {
      this.scene.frame(now);
      if (now - this.panelsAt >= PANELS_EVERY_MS) {
        this.panelsAt = now;
        this.renderPanels(now);
      }
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
    if (lessons) this.lessons.start();
  }
}
