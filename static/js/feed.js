// A live lab as a store's source: one Socket.IO connection. Commands go out on it, and its
// `state` and `batch` events come in, for the lab and for a comparison's right side
// (`store.right`). A recording (player.js) is another feed: both hand each message of the
// lab's stream to `deliver`, so a replay updates the page as the live lab did.

import { Store } from "./store.js";

const ANSWER_TIMEOUT_MS = 15000;
const RIGHT_SIDE = new Set(["set_algorithm", "set_hash_key", "set_mode", "configure"]);
const NO_ANSWER = { ok: false, error: "the lab did not answer (is it still running?)" };

/** One message of the lab's stream into the store, by its name (the stream's own names). */
export function deliver(store, name, data) {
  if (name === "state") {
    store.applyState(data);
    // A comparison's right side: its state comes inside the lab's, its batches say "right".
    if (data.compare && store.right) store.right.applyState(data.compare.right);
  } else if (name === "batch") (data.side === "right" && store.right ? store.right : store).applyBatch(data);
  else if (name === "classroom") store.applyClassroom(data);
  else if (name === "you") store.setYou(data); // this page's role, from its web front
  else store.emit(name, data); // e.g. `recording` (the Record button's progress)
}

/** A store fed by the lab server this page came from (`io` is Socket.IO's client). */
export function liveStore(io, url = undefined) {
  // WebSocket first; if it cannot be had (a proxy in front that does not tunnel it, as the
  // lab's own balancer in front of several web processes before it did), long polling.
  const socket = io(url, { transports: ["websocket", "polling"], tryAllTransports: true });
  const send = (data) =>
    new Promise((resolve) => {
      socket.timeout(ANSWER_TIMEOUT_MS).emit("command", data, (err, ack) => resolve(err ? NO_ANSWER : ack));
    });
  const store = new Store(send);
  // A comparison's right side (fed by `deliver`). Its balancer commands say "right";
  // its knob and backend commands act on both sides.
  store.right = new Store((data) => send(RIGHT_SIDE.has(data.action) ? { ...data, side: "right" } : data));
  socket.on("connect", () => store.setConnection("connected"));
  socket.on("disconnect", () => store.setConnection("disconnected"));
  socket.onAny((name, data) => deliver(store, name, data));
  // The server may also answer a lesson's live check (lab/web/lesson_checks.py).
  store.ask = (event, data) =>
    new Promise((resolve) => {
      socket.timeout(ANSWER_TIMEOUT_MS).emit(event, data, (err, ack) => resolve(err ? NO_ANSWER : ack));
    });
  return store;
}
