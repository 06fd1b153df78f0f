"""The toy backend's UDP side: each datagram is answered with the backend's name and a count.

    any datagram   {"backend": name, "served": its count, "client": "host:port",
                    "bytes": datagram size, "got": the datagram's first 64 bytes as text}
    b"health"      {"backend": name, "healthy": the healthy knob}: the UDP health
                   check's probe, answered at once and not counted in `served`

The HTTP knobs apply: latency_ms and jitter_ms delay the reply, error_rate drops
it (UDP has no error status: a lost reply is what a client sees), and `healthy`
is what the probe's reply says. max_concurrency is an HTTP idea and is ignored here.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.backend.app import ToyBackend

HEALTH_PROBE = b"health"
ECHOED = 64  # bytes of the datagram quoted back, so a client can match replies to sends


class DatagramService(asyncio.DatagramProtocol):
    def __init__(self, backend: ToyBackend) -> None:
        self.backend = backend
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        backend = self.backend
        if data == HEALTH_PROBE:
            backend.health_checks += 1
            self.send({"backend": backend.name, "healthy": backend.knobs.healthy}, addr)
            return
        backend.served += 1
        backend.datagrams += 1
        knobs = backend.knobs
        if knobs.error_rate and backend.rng.random() < knobs.error_rate:
            backend.errors += 1  # the simulated error: the reply is lost
            return
        reply = {
            "backend": backend.name,
            "served": backend.served,
            "client": f"{addr[0]}:{addr[1]}",
            "bytes": len(data),
            "got": data[:ECHOED].decode("utf-8", "replace"),
        }
        ms = knobs.latency_ms
        if knobs.jitter_ms:
            ms = max(ms + backend.rng.uniform(-knobs.jitter_ms, knobs.jitter_ms), 0.0)
        if ms > 0:
            asyncio.get_running_loop().call_later(ms / 1000, self.send, reply, addr)
        else:
            self.send(reply, addr)

    def send(self, document: dict, addr: tuple) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(json.dumps(document, separators=(",", ":")).encode(), addr)

    def error_received(self, exc: Exception) -> None:
        pass  # a client that went away (ICMP): nothing to do, UDP forgets
