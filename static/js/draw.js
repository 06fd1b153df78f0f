// Drawing helpers for the scene: the shapes (dots, clients, crosses, labels) and the
// geometry of moving along a path. Pure functions of a canvas context and numbers.

import { backendColour, backendLabel, inkOn, INK, FAILED_INK } from "./palette.js";

export const DOT_R = 12;
export const CLIENT_R = 17;

/** A request's dot: its backend's colour and number, or a white "?" before it has one. */
export function drawDot(ctx, centre, backend, r = DOT_R) {
  const colour = backend ? backendColour(backend) : "#FFFFFF";
  ctx.beginPath();
  ctx.arc(centre, centre, r, 0, Math.PI * 2);
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.lineWidth = 2;
  ctx.strokeStyle = INK;
  ctx.stroke();
  label(ctx, backend ? backendLabel(backend) : "?", centre, centre, inkOn(colour), Math.round(13 * (r / DOT_R)));
}

export function drawClient(ctx, centre, slot, r = CLIENT_R) {
  ctx.beginPath();
  ctx.arc(centre, centre, r, 0, Math.PI * 2);
  ctx.fillStyle = "#FFFFFF";
  ctx.fill();
  ctx.lineWidth = r < 10 ? 1.5 : 2.5;
  ctx.strokeStyle = INK;
  ctx.stroke();
  if (r >= 12) label(ctx, `c${slot + 1}`, centre, centre, INK, r >= 15 ? 13 : 10);
}

const QUEUE_SHOWN = 24; // small dots piled up; the count says how many really wait
const QUEUE_R = 5;

/**
 * A waiting line, piled up: up to QUEUE_SHOWN small dots in rows of `across`, growing
 * from (x, y) leftwards and then upwards (`up` false: downwards), with the real count on a
 * label beside the pile.
 */
export function drawQueue(ctx, { x, y, across, up = true }, count, backend) {
  const gap = 2 * QUEUE_R + 2;
  const colour = backend ? backendColour(backend) : "#FFFFFF";
  const shown = Math.min(count, QUEUE_SHOWN);
  const cols = Math.max(1, across);
  for (let i = 0; i < shown; i += 1) {
    const cx = x - (i % cols) * gap;
    const cy = y + (up ? -1 : 1) * Math.floor(i / cols) * gap;
    ctx.beginPath();
    ctx.arc(cx, cy, QUEUE_R, 0, Math.PI * 2);
    ctx.fillStyle = colour;
    ctx.fill();
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = INK;
    ctx.stroke();
  }
  const rows = Math.ceil(shown / cols);
  const text = `${count} waiting`;
  ctx.font = "800 15px system-ui, sans-serif";
  const w = ctx.measureText(text).width + 10;
  const top = up ? y - rows * gap - 12 : y + rows * gap + 2;
  const left = Math.max(x + QUEUE_R - w, 0);
  ctx.fillStyle = "#FFFFFF";
  ctx.fillRect(left, top - 10, w, 20);
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = INK;
  ctx.strokeRect(left, top - 10, w, 20);
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  ctx.fillStyle = INK;
  ctx.fillText(text, left + 5, top + 0.5);
}

export function ease(t) {
  const p = Math.min(Math.max(t, 0), 1);
  return p < 0.5 ? 2 * p * p : 1 - (-2 * p + 2) ** 2 / 2;
}

/** The point at fraction `t` of the way along a polyline. */
export function along(points, t) {
  if (points.length === 1) return points[0];
  const lengths = [];
  let total = 0;
  for (let i = 1; i < points.length; i += 1) {
    const d = Math.hypot(points[i].x - points[i - 1].x, points[i].y - points[i - 1].y);
    lengths.push(d);
    total += d;
  }
  let left = t * total;
  for (let i = 0; i < lengths.length; i += 1) {
    if (left <= lengths[i] || i === lengths.length - 1) {
      const k = lengths[i] ? Math.min(left / lengths[i], 1) : 1;
      return { x: points[i].x + (points[i + 1].x - points[i].x) * k, y: points[i].y + (points[i + 1].y - points[i].y) * k };
    }
    left -= lengths[i];
  }
  return points[points.length - 1];
}

export function polyline(ctx, points) {
  ctx.beginPath();
  ctx.moveTo(points[0].x, points[0].y);
  for (const p of points.slice(1)) ctx.lineTo(p.x, p.y);
  ctx.stroke();
}

export function label(ctx, text, x, y, colour, size) {
  ctx.font = `700 ${size}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillStyle = colour;
  ctx.fillText(text, x, y + 0.5);
}

/** A failed request: a white disc, a thick dark-red ring and a cross (not colour alone). */
export function drawCross(ctx, x, y, r) {
  ctx.beginPath();
  ctx.arc(x, y, r, 0, Math.PI * 2);
  ctx.fillStyle = "#FFFFFF";
  ctx.fill();
  ctx.lineWidth = 3;
  ctx.strokeStyle = FAILED_INK;
  ctx.stroke();
  const k = r * 0.5;
  ctx.beginPath();
  ctx.moveTo(x - k, y - k);
  ctx.lineTo(x + k, y + k);
  ctx.moveTo(x + k, y - k);
  ctx.lineTo(x - k, y + k);
  ctx.lineWidth = 3.5;
  ctx.stroke();
}

/** A health-check probe: a white ring, dark red and crossed out when the check failed. */
export function drawProbe(ctx, x, y, r, ok, known) {
  ctx.beginPath();
  ctx.arc(x, y, r, 0, Math.PI * 2);
  ctx.fillStyle = "#FFFFFF";
  ctx.fill();
  ctx.lineWidth = 2.5;
  ctx.strokeStyle = ok ? INK : FAILED_INK;
  ctx.stroke();
  if (ok || !known) return;
  ctx.beginPath();
  ctx.moveTo(x - r, y - r);
  ctx.lineTo(x + r, y + r);
  ctx.moveTo(x + r, y - r);
  ctx.lineTo(x - r, y + r);
  ctx.stroke();
}

/** A thick ring, in a backend's colour, around a client that moved to it. */
export function drawRing(ctx, x, y, r, colour) {
  ctx.beginPath();
  ctx.arc(x, y, r, 0, Math.PI * 2);
  ctx.lineWidth = 4;
  ctx.strokeStyle = colour;
  ctx.stroke();
}
