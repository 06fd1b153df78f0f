"""Layer 7 TLS termination: the balancer decrypts, then reads HTTP as on a plain connection.

The listener stays plain. While `tls.mode` is "terminate", each new connection's
first byte decides: a TLS record (0x16, a handshake) has a TLS layer put between the
transport and an ordinary HttpClientConnection, which then reads decrypted HTTP as on
a plain connection. So switching TLS on or off with `PUT /config` needs no new
listener: open connections finish as they began, new ones get the new setting. A PROXY
header (proxy_protocol.accept) is read before the hello.

The TLS layer is the event loop's own (uvloop's, compiled), made here rather than by
`loop.start_tls`, which cannot be given the bytes this module has already read.

What is not a handshake is answered here: plain HTTP gets a 400 that says so (nginx's
497, "The plain HTTP request was sent to HTTPS port"), anything else is closed, each
with an `error` event. The whole wait, from the connection to the end of the handshake,
is bounded by timeouts.client_header_ms, as a slow request head is.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio.sslproto import SSLProtocol as AsyncioSSLProtocol
from json.encoder import encode_basestring_ascii
from time import monotonic
from typing import Final

from lab.balancer.balancer import Balancer
from lab.balancer.http_proxy import HttpClientConnection
from lab.balancer.tls_context import sni_of
from lab.proxy_protocol import HeaderReader, ProxyError


def tls_layer_class(loop: asyncio.AbstractEventLoop) -> type:
    """The loop's own TLS protocol class: uvloop's (compiled) under uvloop, else asyncio's."""
    layer = LAYERS.get(type(loop))
    if layer is None:
        layer = LAYERS[type(loop)] = AsyncioSSLProtocol
        try:
            import uvloop
            from uvloop.loop import SSLProtocol as UvSSLProtocol  # type: ignore[attr-defined]
        except ImportError:  # pragma: no cover
            return layer
        if isinstance(loop, uvloop.Loop):
            layer = LAYERS[type(loop)] = UvSSLProtocol
    return layer


LAYERS: dict[type, type] = {}  # by the loop's type, found once
HANDSHAKE: Final = 0x16  # the TLS record type of a ClientHello
PLAIN_HTTP: Final = (
    "plain HTTP sent to the HTTPS port: this balancer terminates TLS here (tls.mode "
    "terminate), so connect with https:// (nginx answers 497 to the same mistake)"
)


class TlsSniffer(asyncio.Protocol):
    """A new connection while terminating TLS, until it is known to be TLS or not."""

    def __init__(self, balancer: Balancer, context: ssl.SSLContext) -> None:
        self.balancer = balancer
        self.context = context
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.client_ip = "unknown"
        self.awaiting_proxy = False
        self.proxy_reader: HeaderReader | None = None  # made only with proxy_protocol.accept
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.done = False  # answered, closed, or handed to the TLS layer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else "unknown"
        balancer = self.balancer
        if balancer.proxy_accept:
            if not balancer.proxy_trusted.trusts(self.client_ip):
                self.fail(
                    f"a PROXY header is believed only from proxy_protocol.trusted, "
                    f"and {self.client_ip} is not in it",
                    kind="proxy_protocol",
                )
                return
            self.awaiting_proxy = True
            self.proxy_reader = HeaderReader()
        self.deadline = monotonic() + balancer.client_header_s
        self.timer = self.loop.call_later(balancer.client_header_s, self.too_slow)

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        if self.awaiting_proxy:
            data = self.proxy_header(data)
            if not data:
                return
        if data[0] == HANDSHAKE:
            self.start_tls(data)
        elif 0x41 <= data[0] <= 0x5A:  # an upper-case letter: a method, so plain HTTP
            self.answer_plain_http()
        else:
            self.fail(
                f"not TLS: a TLS connection starts with a handshake record (0x16), "
                f"this one with {data[:8]!r}"
            )

    def proxy_header(self, data: bytes) -> bytes:
        """Read the PROXY header; the bytes after it, b"" until it is whole."""
        reader = self.proxy_reader
        assert reader is not None  # made with awaiting_proxy
        try:
            header, rest = reader.feed(data)
        except ProxyError as exc:
            self.fail(f"{exc} (from {self.client_ip})", kind="proxy_protocol")
            return b""
        if header is None:
            return b""
        self.awaiting_proxy = False
        if header.source is not None:
            self.client_ip = header.source[0]
        return rest

    def start_tls(self, hello: bytes) -> None:
        """Put the TLS layer between this transport and an HttpClientConnection, and give
        it the bytes already read. (loop.start_tls cannot be given bytes already read.)"""
        transport = self.transport
        if transport is None:
            return
        self.done = True
        self.cancel_timer()
        conn = HttpClientConnection(self.balancer)
        gate = HandshakeGate(self, conn)
        waiter = self.loop.create_future()
        tls = tls_layer_class(self.loop)(
            self.loop, gate, self.context, waiter, server_side=True,
            ssl_handshake_timeout=max(self.deadline - monotonic(), 0.001),
        )  # fmt: skip
        waiter.add_done_callback(gate.handshake_over)
        transport.set_protocol(tls)
        tls.connection_made(transport)
        while hello:
            buffer = tls.get_buffer(len(hello))
            n = min(len(buffer), len(hello))
            buffer[:n] = hello[:n]
            tls.buffer_updated(n)
            hello = hello[n:]

    def answer_plain_http(self) -> None:
        self.balancer.publish_error(self.balancer.next_id(), 400, PLAIN_HTTP, kind="tls")
        body = f"400 Bad Request: {PLAIN_HTTP}\n".encode()
        if self.transport is not None:
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: %d\r\nX-Balancer: lb-lab\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self.close()

    def too_slow(self) -> None:
        self.timer = None
        if not self.done:
            ms = self.balancer.config.timeouts.client_header_ms
            self.fail(f"no TLS handshake within {ms} ms (timeouts.client_header_ms)")

    def fail(self, reason: str, kind: str = "tls") -> None:
        if self.done:
            return
        self.balancer.publish_error(self.balancer.next_id(), None, reason, kind=kind)
        self.close()

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def close(self) -> None:
        self.done = True
        self.cancel_timer()
        if self.transport is not None:
            self.transport.close()


class HandshakeGate(asyncio.Protocol):
    """The TLS layer's first protocol: it hears the handshake end, then hands the
    decrypted stream to the HttpClientConnection and steps aside."""

    def __init__(self, sniffer: TlsSniffer, conn: HttpClientConnection) -> None:
        self.sniffer = sniffer
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.early: list[bytes] = []  # decrypted before the handover (not expected)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # called once handshaken

    def handshake_over(self, waiter: asyncio.Future) -> None:
        sniffer = self.sniffer
        exc = waiter.exception()
        transport = self.transport
        if exc is not None or transport is None:
            sniffer.balancer.publish_error(
                sniffer.balancer.next_id(), None,
                handshake_failure(exc, sniffer.balancer), kind="tls",
            )  # fmt: skip
            if sniffer.transport is not None:
                sniffer.transport.close()
            return
        sslobject = transport.get_extra_info("ssl_object")
        sni = sni_of(sslobject)
        version = sslobject.version()
        # The JSON text json.dumps gives, from its C escaper: json.dumps itself is Python.
        text = (
            f',"tls":{{"sni":{"null" if sni is None else encode_basestring_ascii(sni)},'
            f'"version":{"null" if version is None else encode_basestring_ascii(version)},'
            f'"terminated":true,"resumed":{"true" if sslobject.session_reused else "false"}}}'
        )
        conn = self.conn
        transport.set_protocol(conn)
        conn.tls_made(transport, sniffer.client_ip, text, sni)
        for data in self.early:
            conn.data_received(data)
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        self.early.append(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        pass


def handshake_failure(exc: BaseException | None, balancer: Balancer) -> str:
    """Why a client's handshake failed, for a learner."""
    if exc is None:
        return "TLS handshake failed: the connection closed"
    if isinstance(exc, ConnectionAbortedError) and "taking longer" in str(exc):
        ms = balancer.config.timeouts.client_header_ms
        return f"the TLS handshake took longer than {ms} ms (timeouts.client_header_ms)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    return f"TLS handshake failed: {exc.__class__.__name__} {exc}".strip()
