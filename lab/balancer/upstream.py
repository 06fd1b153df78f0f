"""Connections from the balancer to backends, and the per-backend pool of idle keep-alive ones.

Reusing upstream connections is what keeps a Layer 7 proxy fast: a new TCP
handshake per request would cost more than the routing itself.
"""

from __future__ import annotations

import asyncio
import ssl
from time import monotonic
from typing import TYPE_CHECKING, Final

import httptools

from lab.balancer.backend import Backend
from lab.balancer.failover import upstream_failed, upstream_lost
from lab.balancer.framing import response_end
from lab.balancer.hop_by_hop import HOP_BY_HOP_SET
from lab.balancer.tunnel import switch_protocols

if TYPE_CHECKING:
    from lab.balancer.http_proxy import Exchange

MAX_IDLE_PER_BACKEND: Final = 128
# A response's reads are kept (references, not copies) up to this size, so that the
# exact end can be found again if the backend writes past it (see lab.balancer.framing).
KEEP_LIMIT: Final = 256 * 1024


class Surplus(Exception):
    """The backend began another message after its response was complete."""


class HeadDone(Exception):
    """A HEAD response ends with its head, whatever length it announces."""


SURPLUS: Final = Surplus()
HEAD_DONE: Final = HeadDone()


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
        self.until_close = False  # the backend did not keep alive: maybe the body runs to its close
        self.head_parsed = False  # is the final head (not a 1xx) all in?
        self.hop = False  # does it hold a hop-by-hop header (see lab.balancer.hop_by_hop)?
        self.kept: list[bytes] = []  # this response's earlier reads (see KEEP_LIMIT)
        self.kept_size = 0  # -1: too big to keep

    # -- used by the exchange ------------------------------------------------------------

    def start(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.status = 0
        self.interim = False
        self.complete = False
        self.head_parsed = False
        self.hop = False
        self.kept.clear()
        self.kept_size = 0

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
        except httptools.HttpParserUpgrade as exc:
            upgrade = exchange.client.upgrade
            if self.status == 101 and upgrade is not None and upgrade.exchange is exchange:
                switch_protocols(exchange, self, data, int(exc.args[0]))
                return
            upstream_failed(
                exchange,
                self,
                f"{self.backend.name} answered 101 Switching Protocols, "
                "but the request asked for no protocol upgrade",
                retry=False,
            )
            return
        except httptools.HttpParserError:
            if not self.complete:
                upstream_failed(exchange, self, "the backend sent a malformed response")
                return
            framed = self.cut(exchange, data)  # more came than the response: cut it exactly
            if framed is None:
                return
            data = framed
        else:
            if not self.complete and self.kept_size >= 0:
                self.kept_size += len(data)
                if self.kept_size <= KEEP_LIMIT:
                    self.kept.append(data)
                else:
                    self.kept.clear()
                    self.kept_size = -1
        exchange.upstream_seen = monotonic()  # for timeouts.backend_response_ms
        if not exchange.head_out:  # the head gets its hop-by-hop lines replaced (and a cookie)
            data = exchange.response_head(data, self)
        # Bytes go to the client as they came: the response is never re-encoded.
        exchange.response_started = True
        exchange.sent += len(data)
        exchange.client.transport.write(data)
        if self.complete:
            exchange.response_complete(self)

    def cut(self, exchange: Exchange, data: bytes) -> bytes | None:
        """The part of `data` that ends the response, when the parser stopped at its end:
        a HEAD answer's head (ours to stop), or a backend that sent more than the response.
        None when the end cannot be found again (a long response); the client is cut off."""
        if self.kept_size < 0:
            why = (
                f"{self.backend.name} sent bytes after the end of a response over "
                f"{KEEP_LIMIT >> 10} KiB; the balancer cannot find where it ended, so the "
                "client got a cut-off answer"
            )
            exchange.balancer.publish_error(exchange.id, None, why, self.backend, kind="surplus")
            upstream_failed(exchange, self, why)
            return None
        end = response_end(b"".join(self.kept), data, exchange.is_head)
        self.parser = httptools.HttpResponseParser(self)  # that one stopped mid-stream
        if end < len(data):
            self.keep_alive = False  # whatever it sends next is out of step: never reuse
            what = "a HEAD answer" if exchange.is_head else f"a {self.status} answer"
            exchange.balancer.publish_error(
                exchange.id, None,
                f"{self.backend.name} sent {len(data) - end} bytes after the end of its "
                f"response ({what}); they were dropped and that connection closed, "
                "so they can never pass for the answer to another request",
                self.backend, kind="surplus",
            )  # fmt: skip
        return data[:end]

    def eof_received(self) -> bool:
        return False  # close our side too; a half-closed upstream is no use

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            upstream_lost(exchange, self)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_reading_for("upstream")

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.resume_reading_for("upstream")

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:  # a second message in one answer: stop, and cut after the first
            raise SURPLUS

    def on_header(self, name: bytes, value: bytes) -> None:
        n = len(name)  # only names as long as a hop-by-hop one are worth lower-casing
        if (n == 10 or n == 7 or n == 2 or n == 16) and name.lower() in HOP_BY_HOP_SET:
            self.hop = True

    def on_headers_complete(self) -> None:
        self.status = status = self.parser.get_status_code()
        # llhttp keeps alive unless the body runs to the close (or the backend said close).
        self.until_close = not self.parser.should_keep_alive()
        self.interim = interim = 100 <= status < 200 and status != 101
        if interim:
            self.hop = False  # an interim head passes as it is; the final one is edited
        else:
            self.head_parsed = True
        if self.exchange is not None and self.exchange.is_head and not self.interim:
            # httptools cannot be told a HEAD response has no body: stop the parser here
            # (data_received gives the next response a fresh one).
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()
            raise HEAD_DONE

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
        # tls.upstream: connections are TLS, verified against tls.upstream_ca (None: plain).
        self.context: ssl.SSLContext | None = None

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

    def close_idle(self) -> None:
        for backend in list(self.idle):
            self.forget(backend)

    async def connect(self, backend: Backend, timeout: float) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        context = self.context
        if context is None:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(backend, self), backend.host, backend.port
                ),
                timeout,
            )
        else:  # the backend's certificate must name its address (an IP SAN for 127.0.0.1)
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(backend, self),
                    backend.host,
                    backend.port,
                    ssl=context,
                    server_hostname=backend.host,
                ),
                timeout,
            )
        return conn
