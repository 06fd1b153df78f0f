"""A WebSocket tunnel: after the backend's 101 Switching Protocols, bytes both ways, as they come.

The handshake is an ordinary request at Layer 7: rules, a sticky cookie and the
algorithm choose its backend. Once that backend answers 101, HTTP is over on
both connections and the balancer pipes bytes, as Layer 4 does (tcp_proxy), with
the same backpressure: a side that cannot take more stops the other from being
read. The tunnel keeps its backend busy (least connections counts it) until a
side closes or nothing crosses it for timeouts.tunnel_idle_ms, and then its
`done` event says how many bytes went each way and why it ended.

nginx does the same with `proxy_http_version 1.1` and the Upgrade and
Connection headers set; HAProxy does it on its own and applies `timeout tunnel`.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import TYPE_CHECKING, Final

from lab.balancer.request_target import Reject, normalise
from lab.vocabulary.events import DONE

if TYPE_CHECKING:
    from lab.balancer.http_exchange import Exchange
    from lab.balancer.http_proxy import HttpClientConnection
    from lab.balancer.upstream import UpstreamConnection

WEBSOCKET: Final = "websocket"
# The two lines a handshake goes on with. The client's Connection line may name other
# headers (they are hop-by-hop and dropped), so the balancer writes its own.
FORWARDED_LINES: Final = (b"Connection: Upgrade\r\n", b"Upgrade: websocket\r\n")


class Upgrade:
    """A client asked to leave HTTP for WebSocket; kept by its connection until the answer."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.protocol = WEBSOCKET
        self.early: list[bytes] = []  # bytes the client sent after its handshake, held


def accept_upgrade(client: HttpClientConnection, exchange: Exchange, version: str) -> None:
    """Take a WebSocket handshake as a request to route; refuse any other way out of HTTP.

    Called when llhttp says the request asks to upgrade (an Upgrade header that a
    Connection line names, or CONNECT). Raises Reject (the client gets that answer).
    """
    if exchange.method == "CONNECT":
        raise Reject(501, "CONNECT (a tunnel to any address) is not offered here")
    wanted = next((value for name, value in exchange.pairs if name == b"upgrade"), b"")
    if wanted.strip().lower() != WEBSOCKET.encode():
        shown = wanted.decode("latin-1")[:40]
        raise Reject(501, f"Upgrade: {shown} is not supported at Layer 7 here (only websocket)")
    if exchange.method != "GET" or version != "1.1":
        raise Reject(400, "a WebSocket handshake is an HTTP/1.1 GET (RFC 6455 4.1)")
    if exchange.transfer_encoding is not None or any(
        length.strip() != b"0" for length in exchange.content_lengths or ()
    ):
        raise Reject(400, "a WebSocket handshake has no body (RFC 6455 4.1)")
    normalise(exchange)  # drops the headers the Connection line names, Upgrade among them
    exchange.connection = None  # done with: the balancer writes its own Connection line
    exchange.lines.extend(FORWARDED_LINES)
    exchange.pairs.extend([(b"connection", b"Upgrade"), (b"upgrade", b"websocket")])
    # After the answer the connection is a tunnel, or it ends: no request follows this one.
    exchange.keep_alive = False
    client.upgrade = Upgrade(exchange)


def switch_protocols(exchange: Exchange, conn: UpstreamConnection, data: bytes, at: int) -> None:
    """The backend answered 101: pass the answer on and turn both connections into a tunnel.

    `data[:at]` ends the 101 head (earlier parts of it are held in the exchange);
    anything after it is the backend's first WebSocket bytes.
    """
    client = exchange.client
    upgrade = client.upgrade
    assert client.transport is not None and conn.transport is not None and upgrade is not None
    head = exchange.held + data[:at]  # the 101 head passes whole: its Upgrade lines matter
    exchange.held = b""
    if exchange.set_cookie is not None:  # the sticky cookie rides on the 101
        head = head[:-2] + exchange.set_cookie + b"\r\n"
    first = head + data[at:]
    client.transport.write(first)
    exchange.sent += len(first)
    # HTTP is over on both connections: neither object hears of them again.
    exchange.finished = True
    exchange.upstream = None
    conn.exchange = None
    conn.closed = True  # never back to the idle pool
    backend_full = "upstream" in client.read_pauses  # the backend takes no more for now
    client.hand_over()
    tunnel = Tunnel(exchange, client.transport, conn.transport)
    for early in upgrade.early:
        tunnel.client.data_received(early)
    if client.client_eof:  # the client already said it sends no more
        tunnel.client.eof_received()
    elif not backend_full:
        client.transport.resume_reading()  # paused since the handshake: the tunnel reads on


class TunnelEnd(asyncio.Protocol):
    """One of the tunnel's two connections: what it reads goes out on the other."""

    def __init__(self, tunnel: Tunnel, transport: asyncio.Transport, name: str) -> None:
        self.tunnel = tunnel
        self.transport = transport
        self.name = name  # "the client", or the backend's name
        self.peer: TunnelEnd = self  # the other end, set by the tunnel
        self.read = 0  # bytes read from this side (and so written to the other)
        self.eof = False

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel.over:
            return
        self.read += len(data)
        tunnel.seen = monotonic()
        self.peer.transport.write(data)

    def eof_received(self) -> bool:
        """A half-close: pass it on, and carry the other way until that side closes too."""
        self.eof = True
        tunnel = self.tunnel
        if not tunnel.why:
            tunnel.why = f"{self.name} closed the connection first"
        peer = self.peer
        if peer.eof or not peer.transport.can_write_eof():
            tunnel.end()
            return False
        peer.transport.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        tunnel = self.tunnel
        if not tunnel.why:
            verb = "closed the connection first" if exc is None else "reset the connection"
            tunnel.why = f"{self.name} {verb}"
            tunnel.failed = exc is not None and self is tunnel.backend
        tunnel.end()

    def pause_writing(self) -> None:
        self.peer.transport.pause_reading()  # backpressure: read no more than this side takes

    def resume_writing(self) -> None:
        if not self.tunnel.over:
            self.peer.transport.resume_reading()


class Tunnel:
    """The two ends, the idle timer, and the accounting when it ends."""

    def __init__(
        self, exchange: Exchange, client: asyncio.Transport, backend: asyncio.Transport
    ) -> None:
        assert exchange.backend is not None
        self.exchange = exchange
        self.balancer = exchange.balancer
        self.loop = exchange.client.loop
        self.over = False
        self.why = ""  # how it ended, for the done event
        self.failed = False  # the backend reset it: a failure, as at Layer 4
        self.seen = monotonic()  # when the last byte crossed, either way
        self.client = TunnelEnd(self, client, "the client")
        self.backend = TunnelEnd(self, backend, exchange.backend.name)
        self.client.peer, self.backend.peer = self.backend, self.client
        self.backend.read = exchange.sent  # the 101 and what came with it
        self.client.read = exchange.received
        client.set_protocol(self.client)
        backend.set_protocol(self.backend)
        self.timer: asyncio.TimerHandle | None = None
        self.idle_check()

    def idle_check(self) -> None:
        """End a tunnel nothing crossed for timeouts.tunnel_idle_ms; otherwise look again."""
        self.timer = None
        if self.over:
            return
        limit_ms = self.balancer.config.timeouts.tunnel_idle_ms
        now = monotonic()
        due = self.seen + limit_ms / 1000
        if now >= due:
            self.why = f"nothing crossed the tunnel for {limit_ms} ms (timeouts.tunnel_idle_ms)"
            self.end()
            return
        # At the deadline, or within a second, so a lowered setting applies to open tunnels.
        self.timer = self.loop.call_later(min(due - now, 1.0), self.idle_check)

    def end(self) -> None:
        """Close both connections (what was written still goes out) and report, once."""
        if self.over:
            return
        self.over = True
        if self.timer is not None:
            self.timer.cancel()
        self.client.transport.close()
        self.backend.transport.close()
        exchange = self.exchange
        backend = exchange.backend
        assert backend is not None
        balancer = self.balancer
        # No response time to learn from: how long a tunnel lasts says nothing of the backend.
        balancer.release(backend, None, failed=self.failed, why=self.why)
        if balancer.events.listening:
            balancer.events.publish(
                {
                    "type": DONE,
                    "id": exchange.id,
                    "t": balancer.wall_clock(),
                    "backend": backend.name,
                    "status": 101,
                    "ms": round((monotonic() - exchange.started) * 1000.0, 3),
                    "bytes": self.backend.read,
                    "bytes_up": self.client.read,
                    "reason": self.why,
                }
            )
