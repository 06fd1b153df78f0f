// A live lab as a store's source: one Socket.IO connection. Commands go out on it, and its
// `state` and `batch` events come in, for the lab and for a comparison's right side
// (`store.right`). A recording would be another feed.

import { Store } from "./store.js";

const ANSWER_TIMEOUT_MS = 15000;
const RIGHT_SIDE = new Set(["set_algorithm", "set_hash_key", "set_mode", "configure"]);
const NO_ANSWER = { ok: false, error: "the lab did not answer (is it still running?)" };

/** A store fed by the lab server this page came from (`io` is Socket.IO's client). */
export function liveStore(io, url = undefined) {
  const socket = io(url, { transports: ["websocket", "polling"] });
  const send = (data) =>
    new Promise((resolve) => {
      socket.timeout(ANSWER_TIMEOUT_MS).emit("command", data, (err, ack) => resolve(err ? NO_ANSWER : ack));
    });
  const store = new Store(send);
  // A comparison's right side: its state comes inside the lab's, its batches say "right".
  // Its balancer commands say so too; its knob and backend commands act on both sides.
  store.right = new Store((data) => send(RIGHT_SIDE.has(data.action) ? { ...data, side: "right" } : data));
  socket.on("connect", () => store.setConnection("connected"));
  socket.on("disconnect", () => store.setConnection("disconnected"));
  socket.on("state", (state) => {
    store.applyState(state);
    if (state.compare) store.right.applyState(state.compare.right);
  });
  socket.on("batch", (batch) => (batch.side === "right" ? store.right : store).applyBatch(batch));
  // The server may also answer a lesson's live check (lab/web/lesson_checks.py).
  store.ask = (event, data) =>
    new Promise((resolve) => {
      socket.timeout(ANSWER_TIMEOUT_MS).emit(event, data, (err, ack) => resolve(err ? NO_ANSWER : ack));
    });
  return store;
}
