"""Connections from the balancer to backends, and the per-backend pool of idle keep-alive ones.

Reusing upstream connections is what keeps a Layer 7 proxy fast: a new TCP
handshake per request would cost more than the routing itself.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import TYPE_CHECKING, Final

import httptools

from lab.balancer.backend import Backend

if TYPE_CHECKING:
    from lab.balancer.http_proxy import Exchange

MAX_IDLE_PER_BACKEND: Final = 128


class UpstreamConnection(asyncio.Protocol):
    """One HTTP/1.1 connection to a backend, carrying one exchange at a time."""

    def __init__(self, backend: Backend, pool: UpstreamPool) -> None:
        self.backend = backend
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.served = 0  # exchanges completed on this connection (0 = fresh)
        self.closed = False
        # Per-response parse state, reset by `start`.
        self.status = 0
        self.interim = False
        self.complete = False
        self.keep_alive = True
        self.until_close = False  # the body ends when the backend closes (no length, no chunks)

    # -- used by the exchange ------------------------------------------------------------

    def start(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.status = 0
        self.interim = False
        self.complete = False

    def finish(self) -> None:
        """The exchange is over: go back to the idle pool, or close."""
        self.exchange = None
        self.served += 1
        if self.keep_alive and not self.closed:
            self.pool.put_idle(self)
        else:
            self.close()

    def close(self) -> None:
        self.closed = True
        self.exchange = None
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # a backend talking out of turn: this connection is unusable
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            exchange.upstream_failed(self, "the backend sent a malformed response")
            return
        exchange.upstream_seen = monotonic()  # for timeouts.backend_response_ms
        if exchange.set_cookie is not None:  # sticky cookie mode: the one edit we make
            data = exchange.with_cookie(data)
        # Bytes go to the client as they came: the response is never re-encoded.
        exchange.response_started = True
        exchange.sent += len(data)
        exchange.client.transport.write(data)
        if self.complete:
            exchange.response_complete(self)

    def eof_received(self) -> bool:
        return False  # close our side too; a half-closed upstream is no use

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.upstream_lost(self)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_reading_for("upstream")

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.resume_reading_for("upstream")

    # -- httptools callbacks ---------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self.status = status = self.parser.get_status_code()
        # llhttp keeps alive unless the body runs to the close (or the backend said close).
        self.until_close = not self.parser.should_keep_alive()
        self.interim = 100 <= status < 200 and status != 101
        if self.exchange is not None and self.exchange.is_head and not self.interim:
            # httptools cannot be told a HEAD response has no body; end it here
            # and give the next response a fresh parser.
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()
            self.parser = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        if self.interim:  # "100 Continue": the real response follows
            self.interim = False
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()


class UpstreamPool:
    """Idle keep-alive connections per backend, most recently used first."""

    def __init__(self) -> None:
        self.idle: dict[Backend, list[UpstreamConnection]] = {}

    def take_idle(self, backend: Backend) -> UpstreamConnection | None:
        idle = self.idle.get(backend)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def put_idle(self, conn: UpstreamConnection) -> None:
        idle = self.idle.get(conn.backend)
        if idle is None:  # not setdefault: that would make a new list on every call
            idle = self.idle[conn.backend] = []
        if len(idle) >= MAX_IDLE_PER_BACKEND:
            conn.close()
        else:
            idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self.idle.get(conn.backend)
        if idle and conn in idle:
            idle.remove(conn)

    def forget(self, backend: Backend) -> None:
        """A backend left the pool: close its idle connections."""
        for conn in self.idle.pop(backend, []):
            conn.close()

    async def connect(self, backend: Backend, timeout: float) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: UpstreamConnection(backend, self), backend.host, backend.port
            ),
            timeout,
        )
        return conn
