// Layer 4 UDP in the scene: flows and their datagrams. Part of one Scene, which feeds it
// the balancer's events and calls advance() and draw() in its frame.
//
// A flow (a client's address and port, routed once) is a faint line in its backend's
// colour from its client through the balancer to its backend. Every datagram brightens
// it, and it fades out over the balancer's real idle timeout (udp.idle_timeout_ms): when
// the line is gone, the balancer has forgotten the flow too, and the `done` event says so.
// Each datagram is a small square: out to the backend, or (a reply) back to the client.

import { backendColour, INK } from "./palette.js";
import { ease, along, polyline } from "./draw.js";

const SQUARE = 9; // a datagram's side, px: smaller than a request's dot, and square
const TRIP_MS = 900; // a datagram's trip across the scene at 1x
const MAX_SQUARES = 80; // drawn at once; more are counted by the cards, not drawn
const MAX_FLOWS = 150;
const FLOW_ALPHA = 0.45; // a flow's line at its brightest: faint, under the datagrams
const ENDED_MS = 600; // a flow the balancer ended (idle, evicted, moved) fades out this fast

export class UdpFlows {
  constructor(scene) {
    this.scene = scene;
    this.flows = new Map(); // flow id -> {slot, backend, seen (ms, wall clock), ended}
    this.squares = []; // {slot, backend, way, progress}
    this.idleMs = 10000;
  }

  get busy() {
    return this.flows.size > 0 || this.squares.length > 0;
  }

  setSettings(udp) {
    if (udp && udp.idle_timeout_ms) this.idleMs = udp.idle_timeout_ms;
  }

  slot(client, id) {
    // "127.0.0.3:40001": the client is its address; the port only names the flow.
    return this.scene.slotFor(String(client || "").replace(/:\d+$/, ""), id);
  }

  onRoute(event) {
    if (this.flows.size >= MAX_FLOWS) return;
    this.flows.set(event.id, {
      slot: this.slot(event.client, event.id),
      backend: event.backend,
      seen: (event.t || Date.now() / 1000) * 1000,
      ended: 0,
    });
  }

  onDatagram(event) {
    const flow = this.flows.get(event.id);
    if (flow) flow.seen = Math.max(flow.seen, (event.t || Date.now() / 1000) * 1000);
    if (this.squares.length >= MAX_SQUARES) return;
    this.squares.push({ slot: flow ? flow.slot : this.slot(event.client, event.id), backend: event.backend, way: event.way, progress: 0 });
  }

  onDone(event) {
    const flow = this.flows.get(event.id);
    if (flow) flow.ended = Date.now();
  }

  advance(ms) {
    for (const square of this.squares) square.progress += this.scene.reduced ? 1 : ms / TRIP_MS;
    this.squares = this.squares.filter((square) => square.progress < 1);
    const now = Date.now();
    for (const [id, flow] of this.flows) {
      if (this.alpha(flow, now) <= 0) this.flows.delete(id);
    }
  }

  /** How bright a flow's line is now: full at its last datagram, none at the idle timeout. */
  alpha(flow, now) {
    const idle = Math.max(0, 1 - (now - flow.seen) / this.idleMs);
    if (!flow.ended) return FLOW_ALPHA * Math.max(idle, 0.08); // the balancer still holds it
    return FLOW_ALPHA * Math.min(idle, 1 - (now - flow.ended) / ENDED_MS);
  }

  path(slot, backend) {
    const { entry, exit } = this.scene.layout;
    return [this.scene.clientPoint(slot), entry, exit, this.scene.anchor(backend)];
  }

  draw(ctx) {
    const now = Date.now();
    ctx.lineWidth = 3;
    for (const flow of this.flows.values()) {
      ctx.globalAlpha = Math.max(this.alpha(flow, now), 0);
      ctx.strokeStyle = backendColour(flow.backend);
      polyline(ctx, this.path(flow.slot, flow.backend));
    }
    ctx.globalAlpha = 1;
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = INK;
    for (const square of this.squares) {
      const path = this.path(square.slot, square.backend);
      if (square.way === "down") path.reverse();
      const { x, y } = along(path, ease(square.progress));
      ctx.fillStyle = backendColour(square.backend);
      ctx.fillRect(x - SQUARE / 2, y - SQUARE / 2, SQUARE, SQUARE);
      ctx.strokeRect(x - SQUARE / 2, y - SQUARE / 2, SQUARE, SQUARE);
    }
  }
}
