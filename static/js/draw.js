// Drawing helpers for the scene: the shapes (dots, clients, crosses, labels) and the
// geometry of moving along a path. Pure functions of a canvas context and numbers.

import { backendColour, backendLabel, inkOn, INK, FAILED_INK } from "./palette.js";

export const DOT_R = 12;
export const CLIENT_R = 17;

/** A request's dot: its backend's colour and number, or a white "?" before it has one. */
export function drawDot(ctx, centre, backend) {
  const colour = backend ? backendColour(backend) : "#FFFFFF";
  ctx.beginPath();
  ctx.arc(centre, centre, DOT_R, 0, Math.PI * 2);
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.lineWidth = 2;
  ctx.strokeStyle = INK;
  ctx.stroke();
  label(ctx, backend ? backendLabel(backend) : "?", centre, centre, inkOn(colour), 13);
}

export function drawClient(ctx, centre, slot) {
  ctx.beginPath();
  ctx.arc(centre, centre, CLIENT_R, 0, Math.PI * 2);
  ctx.fillStyle = "#FFFFFF";
  ctx.fill();
  ctx.lineWidth = 2.5;
  ctx.strokeStyle = INK;
  ctx.stroke();
  label(ctx, `c${slot + 1}`, centre, centre, INK, 13);
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
