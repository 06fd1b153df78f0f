// HTTPS on the page: what the balancer can see, and which hops are encrypted.
//
// The lab's `state.tls` says how the balancer treats TLS: "terminate" (Layer 7: it decrypts,
// so it sees method, path and headers, and the hop to the backends is plain unless it
// re-encrypts), "passthrough" (Layer 4: it reads only the ClientHello's SNI name and pipes
// the rest, so the lock runs from the client all the way to the backend) or "off".
// A padlock sits on each encrypted hop, on both edges of the balancer box; the box says what
// the balancer sees. One checkbox, HTTPS, turns TLS on for the layer the lab is at.

import { MODE_WORDS } from "./words.js";

// What a balancer can read, at each layer and TLS mode: the lesson's table, live.
export const SEES = {
  "http off": "sees: method, path, headers",
  "http terminate": "sees: method, path, headers (it decrypts)",
  "tcp off": "sees: addresses and ports",
  "tcp passthrough": "sees: SNI name only",
  "udp off": "sees: addresses and ports",
};

export function tlsOf(state) {
  return state.tls || { mode: "off", upstream: false };
}

/** Which hops are encrypted: {toBalancer, toBackend, through}. */
export function encryptedHops(tls) {
  const through = tls.mode === "passthrough";
  return {
    toBalancer: tls.mode !== "off",
    toBackend: through || (tls.mode === "terminate" && Boolean(tls.upstream)),
    through,
  };
}

export class Https {
  constructor(root, store, { command }) {
    this.part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.store = store;
    this.command = command;
    this.part("https").addEventListener("change", (e) => {
      const mode = e.target.checked ? (this.store.state.mode === "tcp" ? "passthrough" : "terminate") : "off";
      this.command({ action: "set_tls", tls: mode });
    });
    store.on("state", ({ state }) => this.render(state));
  }

  render(state) {
    const tls = tlsOf(state);
    const box = this.part("https");
    box.checked = tls.mode !== "off";
    box.disabled = state.mode === "udp"; // DTLS and QUIC are beyond the lab
    const hops = encryptedHops(tls);
    this.part("lock-in").hidden = !hops.toBalancer;
    this.part("lock-out").hidden = !hops.toBackend;
    this.part("balancer").classList.toggle("sealed", hops.through);
    const sees = SEES[`${state.mode} ${tls.mode}`] || SEES[`${state.mode} off`] || "";
    this.part("balancer-sees").textContent = sees;
    const words = MODE_WORDS[state.mode] || MODE_WORDS.http;
    this.part("balancer-mode").textContent = tls.mode === "off" ? words : `${words} · HTTPS`;
  }
}
