"""What a toy backend answers: who served you, plus a few test paths, slowed or failed by its knobs.

Data paths (any method; counted in `served`, subject to every knob):

    /anything          200 JSON: backend, method, path (as sent, with query),
                       client (peer IP), served (this backend's count),
                       bytes_received and sha256 of the request body,
                       forwarded_for when an X-Forwarded-For header came in, and
                       peer (the TCP peer) when a PROXY header named the client
    /bytes?size=S      S bytes (default 1024) with Content-Length
    /chunked?n=N&size=S  Transfer-Encoding: chunked, N chunks of S bytes
                       (defaults 4 and 16); plain Content-Length to HTTP/1.0
    /slow?ms=M         the echo, M ms late; `?delay_ms=M` does the same on
                       any data path, e.g. /chunked?n=3&delay_ms=200

The bodies of /bytes and /chunked repeat responses.PATTERN, so byte i is
PATTERN[i % 64] whatever the chunking. Bodies are capped at 64 MiB and each
delay at 60 s. Every response carries `X-Backend: <name>`.

`GET /health` answers 200 {"healthy": true}, or 503 when the `healthy` knob
is off. It is answered at once: latency, jitter, error rate and max
concurrency do not touch it, and it is not counted in `served`. A lesson can
then slow a backend down without its health check failing, and take it out
of rotation (healthy=false) without making it slow; the two stay separate
ideas. To show a backend that hangs, freeze its process (kill -STOP).

`GET /ws` with `Upgrade: websocket` opens a WebSocket that echoes every
message (websocket.py): a long-lived connection, untouched by the knobs.

A connection may start with a PROXY protocol header (v1 or v2) from loopback,
as the lab's balancer sends with `proxy_protocol.send` at Layer 4: then
`client` is the address it names (connection.py; --proxy-protocol requires one).

`/_lab/...` is the control API (see control.py); it bypasses the knobs too.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from lab.backend import control
from lab.backend.clients import ClientsSeen
from lab.backend.concurrency import ConcurrencyLimit
from lab.backend.knobs import KnobError, Knobs, milliseconds
from lab.backend.request import Request
from lab.backend.responses import TEXT, Framer, echo_body, json_body, pattern_bytes
from lab.backend.tls import TlsSeen

MAX_BODY = 64 * 1024 * 1024
MAX_CHUNKS = 100_000

OTHER_PATHS = frozenset(("/health", "/bytes", "/chunked", "/slow"))
Respond = Callable[[Request], bytes]


class ToyBackend:
    """One backend's knobs, counters and answers; shared by all its connections."""

    def __init__(
        self,
        name: str,
        knobs: Knobs | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.rng = rng or random.Random()
        self.framer = Framer(name, clock)
        self.limit = ConcurrencyLimit()
        self.set_knobs(knobs or Knobs())
        self.listen = ""
        self.pid = os.getpid()
        self.served = 0
        self.errors = 0
        self.health_checks = 0
        self.connections = 0
        self.datagrams = 0  # UDP datagrams answered or dropped (lab.backend.datagrams)
        self.clients = ClientsSeen()  # who the served requests were from, as told (clients.py)
        self.tls = TlsSeen()  # the TLS listener's handshakes, when it has one (tls.py)

    def set_knobs(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.limit.set_limit(knobs.max_concurrency)
        self._may_wait = bool(knobs.latency_ms or knobs.jitter_ms or knobs.max_concurrency)

    def reset(self) -> None:
        self.served = self.errors = self.health_checks = self.datagrams = 0
        self.clients.reset()
        self.tls.reset()

    def counters(self) -> dict[str, int]:
        return {
            "served": self.served,
            "errors": self.errors,
            "health_checks": self.health_checks,
            "in_flight": self.limit.in_flight,
            "waiting": self.limit.waiting,
            "connections": self.connections,
            "datagrams": self.datagrams,
        }

    # -- answering

    def answer(self, request: Request) -> bytes | Awaitable[bytes]:
        """Response bytes now, or an awaitable of them when a knob makes the request wait."""
        path = request.path
        if request.query or self._may_wait or path in OTHER_PATHS or path.startswith("/_"):
            return self._answer_any(request)
        # The hot path of a benchmark: a plain request with no waiting knob.
        return self._serve(request, self._echo)

    def _answer_any(self, request: Request) -> bytes | Awaitable[bytes]:
        path = request.path
        if path.startswith("/_lab/"):
            return control.answer(self, request)
        if path == "/health":
            return self._health(request)
        try:
            params = parse_qs(request.query) if request.query else {}
            delay = self._delay(path, params)
            respond = self._route(path, params)
        except KnobError as exc:
            self.served += 1
            return self.reply(request, 400, {"backend": self.name, **exc.as_json()})
        if delay <= 0 and self.limit.try_enter():
            try:
                return self._serve(request, respond)
            finally:
                self.limit.leave()
        return self._serve_later(request, respond, delay)

    async def _serve_later(self, request: Request, respond: Respond, delay: float) -> bytes:
        await self.limit.enter()
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            return self._serve(request, respond)
        finally:
            self.limit.leave()

    def _serve(self, request: Request, respond: Respond) -> bytes:
        self.served += 1
        self.clients.record(request.peer, request.proxy_client, request.forwarded_for)
        rate = self.knobs.error_rate
        if rate and self.rng.random() < rate:
            self.errors += 1
            message = f"simulated error (error_rate={rate:g})"
            return self.reply(
                request, 500, {"backend": self.name, "error": message, "simulated": True}
            )
        return respond(request)

    def _delay(self, path: str, params: dict[str, list[str]]) -> float:
        ms = self.knobs.latency_ms
        if self.knobs.jitter_ms:
            ms += self.rng.uniform(-self.knobs.jitter_ms, self.knobs.jitter_ms)
        ms = max(ms, 0.0)
        name = "ms" if path == "/slow" else "delay_ms"
        if name in params:
            ms += milliseconds(name, _number(params, name))
        return ms / 1000.0

    def _route(self, path: str, params: dict[str, list[str]]) -> Respond:
        if path == "/bytes":
            size = _whole(params, "size", 1024, 0, MAX_BODY)
            return lambda request: self._bytes(request, size)
        if path == "/chunked":
            chunks = _whole(params, "n", 4, 0, MAX_CHUNKS)
            size = _whole(params, "size", 16, 1, MAX_BODY // max(chunks, 1))
            return lambda request: self._chunked(request, chunks, size)
        return self._echo

    # -- the bodies

    def reply(self, request: Request, status: int, document: dict, extra: bytes = b"") -> bytes:
        """A JSON response, framed for this request (HEAD, keep-alive, HTTP/1.0)."""
        return self.framer.full(
            status,
            json_body(document),
            connection=request.connection_header,
            head_only=request.method == "HEAD",
            extra=extra,
        )

    def _echo(self, request: Request) -> bytes:
        body = echo_body(
            self.name,
            request.method,
            request.target,
            request.client,
            self.served,
            request.body_length,
            request.body_sha256,
            request.forwarded_for,
            None if request.proxy_client is None else request.peer,
            request.tls,
        )
        head_only = request.method == "HEAD"
        return self.framer.full(
            200, body, connection=request.connection_header, head_only=head_only
        )

    def _health(self, request: Request) -> bytes:
        self.health_checks += 1
        healthy = self.knobs.healthy
        return self.reply(
            request, 200 if healthy else 503, {"backend": self.name, "healthy": healthy}
        )

    def _bytes(self, request: Request, size: int) -> bytes:
        return self.framer.full(
            200,
            pattern_bytes(size),
            content_type=TEXT,
            connection=request.connection_header,
            head_only=request.method == "HEAD",
        )

    def _chunked(self, request: Request, chunks: int, size: int) -> bytes:
        if request.version == "1.0":  # HTTP/1.0 has no chunked encoding
            return self._bytes(request, chunks * size)
        body = [pattern_bytes(size, start=i * size) for i in range(chunks)]
        return self.framer.chunked(
            200, body, connection=request.connection_header, head_only=request.method == "HEAD"
        )


def _number(params: dict[str, list[str]], name: str) -> float:
    text = params[name][-1]
    try:
        return float(text)
    except ValueError:
        raise KnobError(name, f"{name} must be a number, got {text!r}") from None


def _whole(params: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    if name not in params:
        return default
    text = params[name][-1]
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise KnobError(name, f"{name} must be a whole number from {low} to {high}, got {text!r}")
    return int(text)
