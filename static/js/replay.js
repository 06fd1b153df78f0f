// A recording's timeline: its messages handed to a feed in order, as the live lab sent them,
// up to a position in seconds. Seeking starts the picture again from the first `state` and
// hands over every message up to that point, so the counters are exactly those of the last
// batch before it; only the last moments' events are drawn (the rest are counted as sampled).

const DRAWN_BEFORE_S = 1.5;
const PICTURES = new Set(["state", "batch"]); // what a step waits for (the classroom's come between)

function undrawn(batch) {
  const routes = batch.events.filter((event) => event.type === "route" && !event.retry).length;
  return { ...batch, events: [], omitted: (batch.omitted || 0) + routes };
}

export class Replay {
  /** `feed(name, data)` takes one message; `restart()` forgets everything fed so far. */
  constructor(messages, feed, restart) {
    this.messages = messages;
    this.feed = feed;
    this.restart = restart;
    this.next = 0; // the index of the next message to hand over
    this.position = 0;
    this.duration = messages.length ? messages.at(-1).t : 0;
  }

  get ended() {
    return this.next >= this.messages.length;
  }

  /** Hand over every message up to `t` (seconds) that is not handed over yet. */
  advanceTo(t) {
    const { messages } = this;
    while (this.next < messages.length && messages[this.next].t <= t) {
      const { name, data } = messages[this.next];
      this.feed(name, data);
      this.next += 1;
    }
    this.position = Math.min(Math.max(t, 0), this.duration);
  }

  /** The picture at `t`, rebuilt from the first state and every message up to it. */
  seek(t) {
    const target = Math.min(Math.max(t, 0), this.duration);
    this.restart();
    this.next = 0;
    const { messages } = this;
    while (this.next < messages.length && messages[this.next].t <= target) {
      const { name, data, t: at } = messages[this.next];
      const early = name === "batch" && Array.isArray(data.events) && target - at > DRAWN_BEFORE_S;
      this.feed(name, early ? undrawn(data) : data);
      this.next += 1;
    }
    if (this.next === 0 && messages.length) {
      this.feed(messages[0].name, messages[0].data); // the first state is always shown
      this.next = 1;
    }
    this.position = target;
  }

  /** On to the next state or batch (with any other message before it or at the same instant). */
  step() {
    const { messages } = this;
    let i = this.next;
    while (i < messages.length - 1 && !PICTURES.has(messages[i].name)) i += 1;
    if (i < messages.length) this.advanceTo(messages[i].t);
  }

  /** Back to the message before the last one handed over. */
  stepBack() {
    const previous = this.messages[Math.max(this.next - 2, 0)];
    if (previous) this.seek(previous.t);
  }
}
