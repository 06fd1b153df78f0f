// Painting one frame of the scene (scene.js): request dots, Layer 4 connection lines, the
// clients, health-check probes, queues and refusal marks, each read from the scene's own
// state (its layout, flights, marks, probes and queues). Dots and clients are stamped from
// sprites drawn once per size and colour, so a frame stays cheap for the compositor.

import { backendColour, backendLabel, INK, FAILED_INK } from "./palette.js";
import { DOT_R, drawDot, drawClient, ease, along, polyline, label, drawCross, drawQueue, drawProbe, drawRing } from "./draw.js";

export const MARK_MS = 1100; // a "refused" cross at a backend
export const PROBE_MS = 700; // a health check's round trip, drawn (the real one takes a millisecond)
const PROBE_R = 6;
const SLOW_MS = 100; // a request that takes this long is drawn large: it costs its backend more
const SPRITE_PAD = 3; // room around a sprite's circle for its ring

function route(scene, f) {
  const { entry, exit } = scene.layout;
  const client = scene.clientPoint(f.slot);
  if (!f.backend) return [client, entry];
  const through = [entry, exit, scene.anchor(f.backend)];
  return f.from === "client" ? [client, ...through] : through.slice(1);
}

function position(scene, f) {
  if (f.phase === "out") {
    const back = [...route(scene, { ...f, from: "client" })].reverse();
    return along(back, ease(f.progress));
  }
  const path = route(scene, f);
  if (f.phase === "wait" || f.phase === "hold") return path[path.length - 1];
  return along(path, ease(f.progress));
}

export function drawFlight(scene, f) {
  const { x, y } = position(scene, f);
  const ctx = scene.ctx;
  const fade = f.phase === "hold" ? 1 - f.progress : 1;
  ctx.globalAlpha = Math.max(fade, 0);
  const showFailure = f.failed && f.phase !== "in";
  if (showFailure) {
    drawCross(ctx, x, y, DOT_R);
    if (f.backend) label(ctx, backendLabel(f.backend), x + DOT_R + 8, y - DOT_R, INK, 13);
  } else {
    // A request's cost shows in its size: one that kept its backend busy long is big.
    const slow = (f.ms ?? (f.phase === "wait" ? f.waited / (scene.speed || 1) : 0)) >= SLOW_MS;
    const r = slow ? DOT_R * 1.5 : DOT_R;
    stamp(scene, `dot:${f.backend || ""}:${r}`, r, x, y, drawDot, f.backend, r);
  }
  ctx.globalAlpha = 1;
}

/** Draw a sprite centred on x, y; `draw(ctx, centre, ...args)` makes it the first time. */
function stamp(scene, key, radius, x, y, draw, ...args) {
  const half = radius + SPRITE_PAD;
  let sprite = scene.sprites.get(key);
  if (!sprite) {
    sprite = document.createElement("canvas");
    sprite.width = sprite.height = Math.ceil(half * 2 * scene.dpr);
    const ctx = sprite.getContext("2d");
    ctx.scale(scene.dpr, scene.dpr);
    draw(ctx, half, ...args);
    scene.sprites.set(key, sprite);
  }
  scene.ctx.drawImage(sprite, x - half, y - half, half * 2, half * 2);
}

export function drawConnections(scene) {
  const ctx = scene.ctx;
  for (const f of scene.flights.values()) {
    if (f.kind !== "connection" || f.phase === "in") continue;
    const path = route(scene, { ...f, from: "client" });
    ctx.globalAlpha = f.phase === "closing" ? Math.max(1 - f.progress, 0) : 1;
    ctx.lineWidth = 5;
    ctx.strokeStyle = INK;
    polyline(ctx, path);
    ctx.lineWidth = 3;
    ctx.strokeStyle = backendColour(f.backend);
    if (f.phase === "closing") ctx.setLineDash([6, 6]);
    polyline(ctx, path);
    ctx.setLineDash([]);
    const end = path[path.length - 1];
    ctx.beginPath();
    ctx.arc(end.x, end.y, 7, 0, Math.PI * 2);
    ctx.fillStyle = backendColour(f.backend);
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = INK;
    ctx.stroke();
    ctx.globalAlpha = 1;
  }
}

export function drawClients(scene) {
  for (let slot = 0; slot < scene.clients; slot += 1) {
    const { x, y, r } = scene.clientPoint(slot);
    stamp(scene, `client:${slot}:${r}`, r, x, y, drawClient, slot, r);
    const to = scene.moved.get(slot);
    if (to) drawRing(scene.ctx, x, y, r + 4, backendColour(to)); // moved there (hashing)
  }
}

/** Health-check probes: out to the backend and back; reduced motion shows them at the card. */
export function drawProbes(scene) {
  const ctx = scene.ctx;
  const from = scene.layout.exit;
  for (const probe of scene.probes) {
    const to = scene.anchor(probe.backend);
    const t = probe.age / PROBE_MS;
    const { x, y } = scene.reduced ? to : along([from, to, from], t);
    ctx.globalAlpha = scene.reduced ? Math.max(1 - t, 0) : 1;
    // The answer (or its absence) is known on the way back: a failed one is crossed out.
    drawProbe(ctx, x, y, PROBE_R, probe.ok, t >= 0.5 || scene.reduced);
    ctx.globalAlpha = 1;
  }
}

/** Requests waiting at a backend or at the balancer: a stack in front of it, with a count. */
export function drawQueues(scene) {
  const { vertical, box } = scene.layout;
  const gap = 12; // a queued dot's width and its space (draw.js)
  for (const [name, count] of scene.queues) {
    if (!name) {
      // The balancer's own queue piles up above its box, clear of the clients' lane.
      const across = Math.floor((box.right - box.left) / gap);
      drawQueue(scene.ctx, { x: box.right - 8, y: box.top - 10, across }, count, "");
      continue;
    }
    // Beside the card, in the room between it and the balancer (above it on a phone).
    const at = scene.anchor(name);
    const room = vertical ? 4 * gap : at.x - box.right - 4;
    const across = Math.max(1, Math.min(4, Math.floor(room / gap)));
    drawQueue(scene.ctx, { x: vertical ? at.x + 1.5 * gap : at.x + DOT_R - 4, y: at.y - DOT_R - 8, across }, count, name);
  }
}

export function drawMarks(scene) {
  const ctx = scene.ctx;
  for (const mark of scene.marks) {
    const { x, y } = scene.anchor(mark.backend);
    ctx.globalAlpha = Math.max(1 - mark.age / MARK_MS, 0);
    drawCross(ctx, x - 26, y, DOT_R + 2);
    label(ctx, "refused", x - 26, y + DOT_R + 14, FAILED_INK, 13);
    ctx.globalAlpha = 1;
  }
}
