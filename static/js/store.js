// The store: what one lab's page knows, fed by one source (a live socket today; another lab
// or a recording later), read by every component of that page.
//
// It holds the latest `state` (a full snapshot), the newest exact counters, the latency
// history, the classroom (lab/web/room.py: one for the lab, seen alike by every page) and
// who this page is (`you`: presenter, viewer or user, as the server decided), and sends
// commands through the source it was given. Components subscribe to "state", "batch",
// "counters", "answer", "connection", "classroom" and "you"; nothing here touches the DOM.
// Shapes: see lab/web/app.py.

const HISTORY_S = 60;

export class Store {
  /** `send(data)` carries one command to the lab and resolves with its answer. */
  constructor(send) {
    this.send = send;
    this.state = null;
    this.counters = null; // the newest read so far (a `state` may arrive after a newer batch)
    this.history = []; // closed seconds of latency, oldest first
    this.latencyNow = null; // the second still running
    this.omitted = 0; // requests the server left out of the batches (all counted)
    this.connection = "connecting";
    this.classroom = null;
    this.you = null; // {role, classroom, ...}: null until the server said
    this.listeners = new Map();
  }

  /** The page's role: "presenter", "viewer" or "user" (the one user of a lab, no classroom). */
  get role() {
    return this.you ? this.you.role : "user";
  }

  setYou(you) {
    this.you = you;
    this.emit("you", you);
  }

  /** Resolve once the server has said who this page is (at once if it has). */
  known() {
    if (this.you) return Promise.resolve(this.you);
    return new Promise((resolve) => {
      const off = this.on("you", (you) => {
        off();
        resolve(you);
      });
    });
  }

  applyClassroom(classroom) {
    const before = this.classroom;
    this.classroom = classroom;
    this.emit("classroom", { classroom, before });
  }

  on(kind, listener) {
    if (!this.listeners.has(kind)) this.listeners.set(kind, new Set());
    this.listeners.get(kind).add(listener);
    return () => this.listeners.get(kind).delete(listener);
  }

  /** Resolve with the next `kind` event for which `test` is true, or null after `ms`. */
  next(kind, test, ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(null), ms);
      const off = this.on(kind, (data) => {
        const found = test(data);
        if (found) finish(found);
      });
      function finish(value) {
        clearTimeout(timer);
        off();
        resolve(value);
      }
    });
  }

  emit(kind, data) {
    for (const listener of this.listeners.get(kind) || []) listener(data);
  }

  setConnection(status) {
    this.connection = status;
    this.emit("connection", status);
  }

  applyState(state) {
    const before = this.state;
    this.state = state;
    this.history = state.latency_history.slice();
    this.takeCounters(state.counters);
    this.emit("state", { state, before });
    if (state.classroom) this.applyClassroom(state.classroom);
  }

  applyBatch(batch) {
    this.omitted += batch.omitted;
    if (batch.latency.length) this.history = this.history.concat(batch.latency).slice(-HISTORY_S);
    this.latencyNow = batch.latency_now ?? null;
    this.emit("batch", batch);
    this.takeCounters(batch.counters);
  }

  /** Keep counters only if they were read after the ones held (see `read` in lab/web/app.py). */
  takeCounters(counters) {
    if (!counters || !counters.backends) return;
    if (this.counters && counters.read < this.counters.read) return;
    this.counters = counters;
    this.emit("counters", counters);
  }

  /** Start the latency chart and the sampling note afresh (after a reset). */
  forgetHistory() {
    this.history = [];
    this.latencyNow = null;
    this.omitted = 0;
  }

  /** Forget everything the source said, to be told again from a first `state` (a replay's seek). */
  clear() {
    this.state = null;
    this.counters = null;
    this.forgetHistory();
  }

  /** Send one command; resolve with its answer ({ok} or {ok: false, error}). */
  async command(data) {
    this.emit("command", data);
    const answer = await this.send(data);
    this.emit("answer", { data, answer });
    return answer;
  }
}
