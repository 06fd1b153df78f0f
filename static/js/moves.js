// Hashing moves: when a backend is added or removed under a hashing algorithm, which
// clients now go to another backend than before, and what share of them moved.
//
// It follows each batch's `routed` (every client routed in it and its backend, exact even
// when the batch's events are sampled), or, from a recording made before that existed, the
// route events: each client's backend before the change, and after it. The scene rings the clients that moved
// in their new backend's colour; a note says how many and where they went.

const HASHING = new Set(["ip-hash", "consistent-hash"]);
const SHOWN = 4; // movers named in the note

function clientName(address) {
  const match = /^127\.0\.0\.(\d+)$/.exec(address || "");
  return match ? `c${Number(match[1]) - 1}` : address || "?";
}

export class Moves {
  constructor(root, store, scene) {
    this.store = store;
    this.scene = scene;
    this.note = root.querySelector('[data-part="moves"]');
    this.latest = new Map(); // client -> backend of its latest route
    this.before = null; // the map when the backends changed
    this.after = new Map();
    this.change = "";
    this.dirty = false;
    this.names = null; // the balancer's backends, as last told (a state, or a config event)
    this.algorithm = "";
    store.on("batch", (batch) => this.take(batch.events, batch.routed));
    store.on("state", ({ state }) => this.onState(state));
  }

  onState(state) {
    // Only the first picture comes from a state: after it, the balancer's own `config`
    // events say what changed, in order with the routes around them (a state may come a
    // little before or after its batch).
    if (this.names !== null) return;
    this.algorithm = state.algorithm;
    this.names = new Set(state.backends.map((b) => b.name));
  }

  /** A change of the balancer's settings, from its `config` event. */
  onConfig(changes) {
    if (changes.fresh || changes.algorithm !== undefined) {
      // A lesson (or a reset of it) rebuilt the balancer, or the algorithm changed: what
      // clients had before says nothing about what they get now.
      this.forget();
      if (changes.algorithm !== undefined) this.algorithm = changes.algorithm;
      if (Array.isArray(changes.backends)) this.names = new Set(changes.backends.map((b) => b.name));
      return;
    }
    if (Array.isArray(changes.backends)) this.noteBackends(changes.backends.map((b) => b.name));
  }

  /** The balancer's backends now: an addition or removal under hashing starts a "before". */
  noteBackends(list) {
    const now = new Set(list);
    const was = this.names;
    this.names = now;
    if (was === null) return;
    const added = [...now].filter((n) => !was.has(n));
    const removed = [...was].filter((n) => !now.has(n));
    if (!added.length && !removed.length) return;
    if (!HASHING.has(this.algorithm)) return;
    this.before = new Map(this.latest);
    this.after = new Map();
    this.change = [added.length ? `${added.join(", ")} was added` : "", removed.length ? `${removed.join(", ")} was removed` : ""].filter(Boolean).join(" and ");
    this.dirty = true;
  }

  forget() {
    this.latest = new Map();
    this.before = null;
    this.after = new Map();
    this.dirty = true;
  }

  take(events, routed) {
    for (const event of events) {
      if (event.type === "config" && event.changes) {
        this.onConfig(event.changes);
      } else if (!routed && event.type === "route" && event.client) {
        this.saw(event.client, event.backend);
      }
    }
    for (const [client, backend] of Object.entries(routed || {})) this.saw(client, backend);
  }

  saw(client, backend) {
    this.latest.set(client, backend);
    if (this.before) {
      this.after.set(client, backend);
      this.dirty = true;
    }
  }

  /** Clients seen before and after the change, and those among them that moved. */
  summary() {
    if (!this.before) return null;
    const both = [...this.after.keys()].filter((c) => this.before.has(c));
    const moved = both.filter((c) => this.before.get(c) !== this.after.get(c));
    return { both, moved };
  }

  render() {
    if (!this.dirty) return;
    this.dirty = false;
    const summary = this.summary();
    const rings = new Map();
    if (!summary || !summary.both.length) {
      this.note.hidden = !summary;
      this.note.textContent = summary ? `Since ${this.change}: send requests to see which clients move.` : "";
      this.scene.setMoved(rings);
      return;
    }
    const { both, moved } = summary;
    for (const client of moved) rings.set(this.scene.slotFor(client, ""), this.after.get(client));
    this.scene.setMoved(rings);
    const share = Math.round((100 * moved.length) / both.length);
    // The first few by name (the scene rings them all); the note must not hide the scene.
    const named = moved.slice(0, SHOWN).map((c) => `${clientName(c)} ${this.before.get(c)}→${this.after.get(c)}`);
    const more = moved.length > SHOWN ? `, and ${moved.length - SHOWN} more` : "";
    this.note.hidden = false;
    this.note.dataset.moved = String(moved.length);
    this.note.dataset.seen = String(both.length);
    const head = document.createElement("b");
    head.textContent = `Since ${this.change}: ${moved.length} of ${both.length} clients moved (${share}%)`;
    const list = document.createElement("span");
    list.textContent = named.length ? `${named.join(", ")}${more}` : "";
    this.note.replaceChildren(head, list);
    this.note.title = moved.map((c) => `${clientName(c)} ${this.before.get(c)}→${this.after.get(c)}`).join(", ");
  }
}
