// Where things are in the scene, measured from the DOM on layout changes only: the clients'
// lane, the balancer box, and each backend card (clamped to the cards' scroll region, so a
// card scrolled out of sight is reached at the region's edge).
//
// Wide scenes run left to right (clients, balancer, cards); a narrow one (a phone) runs top
// to bottom, with the clients in a row above the balancer and the cards below it, each dot
// landing above its card's column.

import { DOT_R } from "./draw.js";

const MAX_CLIENT_R = 17;
const MIN_CLIENT_R = 6;

export function measureScene(scene) {
  const box = scene.canvas.getBoundingClientRect();
  const rel = (r) => ({ left: r.left - box.left, right: r.right - box.left, top: r.top - box.top, bottom: r.bottom - box.top, width: r.width, height: r.height });
  // The page's CSS says which way the scene runs (layout.css, --flow).
  const vertical = getComputedStyle(scene.container).getPropertyValue("--flow").trim() === "column";
  const lb = rel(scene.balancerBox.getBoundingClientRect());
  const lane = rel(scene.lane.getBoundingClientRect());
  const region = rel(scene.holder.getBoundingClientRect());
  const anchors = new Map();
  for (const card of scene.holder.querySelectorAll("[data-backend]")) {
    const r = rel(card.getBoundingClientRect());
    if (vertical) {
      const x = Math.min(Math.max((r.left + r.right) / 2, region.left), region.right);
      anchors.set(card.dataset.backend, { x, y: region.top - DOT_R - 4, hidden: false });
    } else {
      const y = Math.min(Math.max(r.top + r.height / 2, region.top + DOT_R), region.bottom - DOT_R);
      anchors.set(card.dataset.backend, { x: r.left - DOT_R - 4, y, hidden: r.bottom < region.top || r.top > region.bottom });
    }
  }
  const layout = {
    vertical,
    anchors,
    // Where a request enters and leaves the balancer box.
    entry: vertical ? { x: (lb.left + lb.right) / 2, y: lb.top } : { x: lb.left, y: lb.top + lb.height / 2 },
    exit: vertical ? { x: (lb.left + lb.right) / 2, y: lb.bottom } : { x: lb.right, y: lb.top + lb.height / 2 },
    box: lb,
    lane,
    fallback: vertical ? { x: (lb.left + lb.right) / 2, y: lb.bottom + 120 } : { x: lb.right + 120, y: lb.top + lb.height / 2 },
  };
  // The canvas ends just past the farthest point a dot reaches, where the cards begin: what
  // it drew under them would never be seen, and each pixel costs at every frame.
  const points = [...anchors.values()];
  const width = vertical
    ? scene.container.clientWidth
    : Math.min(Math.ceil(Math.max(lb.right + 120, ...points.map((a) => a.x)) + DOT_R + 6), scene.container.clientWidth);
  const height = vertical
    ? Math.min(Math.ceil(Math.max(lb.bottom + 120, ...points.map((a) => a.y)) + DOT_R + 6), scene.container.clientHeight)
    : scene.container.clientHeight;
  return { layout, width: Math.max(width, 1), height: Math.max(height, 1) };
}

/** Client `slot` of `count`: spread along the lane, with a radius that lets them all fit. */
export function clientPoint(layout, slot, count) {
  const lane = layout.lane;
  const along = layout.vertical ? lane.width : lane.height - 24; // below the lane's label
  const start = layout.vertical ? lane.left : lane.top + 24;
  const step = count > 1 ? along / count : along;
  const r = Math.max(MIN_CLIENT_R, Math.min(MAX_CLIENT_R, step / 2 - 2));
  const at = start + step * (slot + 0.5);
  return layout.vertical ? { x: at, y: lane.top + lane.height / 2, r } : { x: lane.left + lane.width / 2, y: at, r };
}
