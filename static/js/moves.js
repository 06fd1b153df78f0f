// Hashing moves: when a backend is added or removed under a hashing algorithm, which
// clients now go to another backend than before, and what share of them moved.
//
// It follows the route events the page is sent (every one under lesson traffic): each
// client's backend before the change, and after it. The scene rings the clients that moved
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
    store.on("batch", (batch) => this.take(batch.events));
    store.on("state", ({ state, before }) => this.onState(state, before));
  }

  onState(state, before) {
    if (!before) return;
    const was = new Set(before.backends.map((b) => b.name));
    const now = new Set(state.backends.map((b) => b.name));
    const added = [...now].filter((n) => !was.has(n));
    const removed = [...was].filter((n) => !now.has(n));
    const lessonChanged = (before.lesson && before.lesson.slug) !== (state.lesson && state.lesson.slug);
    if (lessonChanged || !HASHING.has(state.algorithm) || before.algorithm !== state.algorithm) {
      if (lessonChanged || before.algorithm !== state.algorithm) this.forget();
      return;
    }
    if (!added.length && !removed.length) return;
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

  take(events) {
    for (const event of events) {
      if (event.type !== "route" || !event.client) continue;
      this.latest.set(event.client, event.backend);
      if (this.before) {
        this.after.set(event.client, event.backend);
        this.dirty = true;
      }
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
