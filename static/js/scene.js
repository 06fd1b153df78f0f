// The scene: clients on the left, the balancer in the middle, backend cards on the right.
// Every drawn request is a dot on one canvas, moved by one requestAnimationFrame loop
// (the page calls frame()). The DOM (balancer box, cards) is only measured, on layout changes
// (scene_layout.js) and painted by scene_paint.js. It is built on one lab's root element;
// the page feeds it events.
//
// The canvas is redrawn at every frame while anything moves, so each frame must be cheap
// for the browser's compositor too, which in a browser without a GPU blends it in software:
// the canvas is opaque (it paints the scene's background itself), it stops where the cards
// begin, its bitmap has exactly the pixels it covers on screen (a scaled bitmap is filtered
// at every frame), dots and clients are stamped from pre-drawn sprites, and a still, empty
// scene is not redrawn.
//
// Layer 7: one dot per request: client -> balancer -> backend, a short stay, then back.
// Layer 4: one line per open TCP connection, from its client through the balancer to its
// backend, drawn while the connection lives; a dot shows it being set up. A WebSocket tunnel
// at Layer 7 (a route with `upgrade`) is drawn the same way, until its done.
// Layer 4 UDP: flows and datagrams, drawn by flows.js.
// Health checks: each probe the balancer really made (a `check` event) is a small ring
// from the balancer to the backend and back, crossed out when the check failed.

import { measureScene, clientPoint } from "./scene_layout.js";
import { MARK_MS, PROBE_MS, drawFlight, drawConnections, drawClients, drawProbes, drawQueues, drawMarks } from "./scene_paint.js";
import { UdpFlows } from "./flows.js";

const IN_MS = 1000; // client -> backend at 1x
const OUT_MS = 750; // backend -> client at 1x
const DWELL_MS = 160; // a visible stay at the backend, even for a 1 ms answer
const HOLD_MS = 700; // reduced motion: how long a dot stays where it landed
const CLOSE_MS = 600; // a closed L4 connection fading out
const MAX_PROBES = 36; // drawn at once: a dozen backends at slow motion
const STALE_MS = 60000; // a request whose end never came (its events were dropped)
export const MAX_DOTS = 150; // drawn at once; more are counted, not drawn
const MAX_CLIENTS_DRAWN = 64; // the traffic generator's maximum: every client is drawn

export class Scene {
  constructor(root) {
    const part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.canvas = part("scene-canvas");
    this.container = part("scene");
    this.balancerBox = part("balancer");
    this.lane = part("clients-lane");
    this.holder = part("backends");
    this.queues = new Map(); // backend name -> requests waiting there; "" is the balancer's
    this.moved = new Map(); // client slot -> the backend it moved to (hashing)
    this.ctx = this.canvas.getContext("2d", { alpha: false });
    this.background = "#FFFFFF"; // the scene's own, read in measure()
    this.dpr = 1;
    this.sprites = new Map(); // key -> a small canvas drawn once, stamped with drawImage
    this.stale = true; // the canvas shows something that must be redrawn or cleared
    this.flights = new Map(); // request or connection id -> flight
    this.marks = []; // {backend, age}: refusals
    this.probes = []; // {backend, ok, age}
    this.speed = 1;
    this.reduced = false; // prefers-reduced-motion: dots jump and hold instead of moving
    this.clients = 4;
    this.skipped = 0; // requests not drawn because too many were in flight
    this.ignored = new Set(); // their later events are ignored too
    this.layoutDirty = true; // measure() sets layout, width and height before any drawing
    this.last = 0;
    this.lastAdmitted = 0; // the balancer time of the newest dot drawn
    // Decision-to-screen delays in seconds (the balancer's event time `t` to the first frame
    // that draws it), recorded only while this is an array: `lb-lab bench --web` sets it
    // through the page's test hook (page.js), so it costs nothing otherwise.
    this.delays = null;
    this.udp = new UdpFlows(this);
  }

  setClients(count) {
    const clients = Math.max(1, Math.min(count || 1, MAX_CLIENTS_DRAWN));
    if (clients !== this.clients) this.stale = true;
    this.clients = clients;
  }

  invalidateLayout() { this.layoutDirty = true; }

  /** Read where the balancer box and the cards are; size the canvas for the screen. */
  measure() {
    const box = this.canvas.getBoundingClientRect();
    const { layout, width, height } = measureScene(this);
    this.layout = layout;
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    const dpr = window.devicePixelRatio || 1;
    if (dpr !== this.dpr) this.sprites.clear();
    this.dpr = dpr;
    this.width = width;
    this.height = height;
    // The device pixels the browser snaps the canvas to (its edges, rounded): a bitmap of
    // any other size would be scaled, and so filtered, at every frame.
    this.canvas.width = Math.max(Math.round((box.left + width) * dpr) - Math.round(box.left * dpr), 1);
    this.canvas.height = Math.max(Math.round((box.top + height) * dpr) - Math.round(box.top * dpr), 1);
    this.ctx.setTransform(this.canvas.width / width, 0, 0, this.canvas.height / height, 0, 0);
    this.background = getComputedStyle(this.container).backgroundColor;
    this.stale = true;
    this.layoutDirty = false;
  }

  clientPoint(slot) {
    return clientPoint(this.layout, slot, this.clients);
  }

  slotFor(client, id) {
    const match = /^127\.0\.0\.(\d+)$/.exec(client || "");
    // The traffic generator's client k sends from 127.0.0.(k+1), k from 1.
    const n = match ? Number(match[1]) - 2 : [...String(client || id)].reduce((s, c) => s + c.charCodeAt(0), 0);
    return ((n % this.clients) + this.clients) % this.clients;
  }

  anchor(name) {
    return this.layout.anchors.get(name) || this.layout.fallback;
  }

  /** Clients that moved to another backend (slot -> its new backend): ringed in its colour. */
  setMoved(moved) {
    this.moved = moved;
    this.stale = true;
  }

  /** Requests waiting: `queues` maps a backend to its line; "" is the balancer's own. */
  setQueues(queues) {
    const same = queues.size === this.queues.size && [...queues].every(([k, v]) => this.queues.get(k) === v);
    if (same) return;
    this.queues = queues;
    this.stale = true;
  }

  /** Drop every dot, mark and probe in flight (a replay that seeks starts the picture again). */
  clear() {
    this.flights.clear();
    this.marks = [];
    this.probes = [];
    this.ignored.clear();
    this.skipped = 0;
    this.lastAdmitted = 0;
    this.stale = true;
  }

  /** Take one batch of balancer events (route, done, error, ...). */
  ingest(events) {
    for (const event of events) {
      if (event.mode === "udp" || event.type === "datagram" || event.end) this.onUdp(event);
      else if (event.type === "route") this.onRoute(event);
      else if (event.type === "done") this.onDone(event);
      else if (event.type === "error") this.onError(event);
      else if (event.type === "check" && this.probes.length < MAX_PROBES) {
        this.probes.push({ backend: event.backend, ok: event.ok, age: 0 });
      }
    }
  }

  onUdp(event) {
    const udp = this.udp;
    if (event.type === "route") udp.onRoute(event);
    else if (event.type === "datagram") udp.onDatagram(event);
    else if (event.type === "done") udp.onDone(event);
  }

  onRoute(event) {
    if (this.ignored.has(event.id)) return;
    const flight = this.flights.get(event.id);
    if (flight) {
      // A retry: the cross at the refusing backend came with the error event.
      Object.assign(flight, { backend: event.backend, from: "balancer", phase: "in", progress: 0 });
      return;
    }
    if (this.flights.size >= MAX_DOTS || this.crowded(event.t)) {
      this.skipped += 1;
      this.ignored.add(event.id);
      if (this.ignored.size > 20000) this.ignored.clear();
      return;
    }
    if (event.t) this.lastAdmitted = event.t;
    this.flights.set(event.id, {
      id: event.id,
      t: event.t,
      timed: this.delays === null, // only requests that arrive while measuring are timed
      kind: event.mode === "tcp" || event.upgrade ? "connection" : "request",
      slot: this.slotFor(event.client, event.id),
      backend: event.backend,
      from: "client",
      phase: "in",
      progress: 0,
      waited: 0,
      failed: false,
      done: false,
    });
  }

  /**
   * Under heavy traffic, take new dots at the steady pace the scene can hold (MAX_DOTS over
   * a dot's trip), judged by the balancer's time `t`: otherwise the dots that fit would
   * start together and cross the scene in waves, with empty stretches between them.
   */
  crowded(t) {
    if (!t || this.flights.size < MAX_DOTS / 2) return false; // a burst of "Send 10" is drawn whole
    const gap = (IN_MS + DWELL_MS + OUT_MS) / MAX_DOTS / (this.speed || 1) / 1000;
    return t - this.lastAdmitted < gap;
  }

  onDone(event) {
    const flight = this.flights.get(event.id);
    if (!flight) return;
    flight.done = true;
    if (typeof event.ms === "number") flight.ms = event.ms;
    if (flight.kind === "request") flight.failed = event.status == null || event.status >= 500;
  }

  onError(event) {
    if (this.ignored.has(event.id)) return;
    if (event.status == null && event.backend) {
      this.marks.push({ backend: event.backend, age: 0 }); // refused; a retry route follows
      return;
    }
    const flight = this.flights.get(event.id);
    if (flight) {
      Object.assign(flight, { failed: true, done: true });
    } else if (this.flights.size < MAX_DOTS) {
      // Refused by the balancer itself (e.g. 503 "no healthy backend"): there and back.
      this.flights.set(event.id, {
        id: event.id, t: event.t, timed: this.delays === null, kind: "request",
        slot: this.slotFor(event.client, event.id), backend: null,
        from: "client", phase: "in", progress: 0, waited: 0, failed: true, done: true,
      });
    }
  }

  /** Advance and draw everything; `now` is the requestAnimationFrame time. */
  frame(now) {
    const dt = this.last ? Math.min(now - this.last, 100) : 0;
    this.last = now;
    if (this.layoutDirty) this.measure();
    this.advance(dt * this.speed);
    const empty = !this.flights.size && !this.marks.length && !this.probes.length && !this.queues.size && !this.moved.size && !this.udp.busy;
    if (empty && !this.stale) return; // nothing moves and the canvas already shows that
    this.stale = !empty;
    const ctx = this.ctx;
    ctx.fillStyle = this.background;
    ctx.fillRect(0, 0, this.width, this.height);
    drawClients(this);
    drawConnections(this);
    this.udp.draw(ctx);
    for (const flight of this.flights.values()) {
      if (flight.kind === "request" || flight.phase === "in") drawFlight(this, flight);
    }
    drawQueues(this);
    drawMarks(this);
    drawProbes(this);
    if (this.delays) this.recordDelays();
  }

  /** Note how long each flight drawn for the first time took from decision to screen. */
  recordDelays() {
    const wall = Date.now() / 1000; // the same clock as the balancer's `t` on one machine
    for (const flight of this.flights.values()) {
      if (!flight.timed && flight.t) {
        flight.timed = true;
        this.delays.push(wall - flight.t);
      }
    }
  }

  advance(ms) {
    for (const [id, f] of this.flights) {
      if (f.phase === "in") {
        f.progress += this.reduced ? 1 : ms / IN_MS;
        if (f.progress >= 1) Object.assign(f, { phase: "wait", progress: 0, waited: 0 });
      } else if (f.phase === "wait") {
        f.waited += ms;
        if (!f.done) {
          if (f.kind === "request" && f.waited > STALE_MS) this.flights.delete(id);
        } else if (f.kind === "connection") {
          Object.assign(f, { phase: "closing", progress: 0 });
        } else if (f.waited >= DWELL_MS) {
          Object.assign(f, { phase: this.reduced ? "hold" : "out", progress: 0 });
        }
      } else {
        const length = f.phase === "out" ? OUT_MS : f.phase === "hold" ? HOLD_MS : CLOSE_MS;
        f.progress += ms / length;
        if (f.progress >= 1) this.flights.delete(id);
      }
    }
    this.udp.advance(ms);
    for (const mark of this.marks) mark.age += ms;
    this.marks = this.marks.filter((mark) => mark.age < MARK_MS);
    for (const probe of this.probes) probe.age += ms;
    if (this.probes.length) this.probes = this.probes.filter((probe) => probe.age < PROBE_MS);
  }
}
