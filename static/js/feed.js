// A live lab as a store's source: one Socket.IO connection. Commands go out on it, and its
// `state` and `batch` events come in. A recording or a second lab would be another feed.

import { Store } from "./store.js";

const ANSWER_TIMEOUT_MS = 15000;
const NO_ANSWER = { ok: false, error: "the lab did not answer (is it still running?)" };

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
  socket.on("connect", () => store.setConnection("connected"));
  socket.on("disconnect", () => store.setConnection("disconnected"));
  socket.on("state", (state) => store.applyState(state));
  socket.on("batch", (batch) => store.applyBatch(batch));
  // The server may also answer a lesson's live check (lab/web/lesson_checks.py).
  store.ask = (event, data) =>
    new Promise((resolve) => {
      socket.timeout(ANSWER_TIMEOUT_MS).emit(event, data, (err, ack) => resolve(err ? NO_ANSWER : ack));
    });
  return store;
}
