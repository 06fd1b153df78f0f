"""Layer 7: an HTTP/1.1 reverse proxy that makes one routing decision per request.

The shell is thin: parse (httptools) -> choose (the pool's algorithm) -> send
the request head and stream the body to a pooled upstream connection ->
stream the response back byte for byte -> publish events. Bodies are never
buffered whole in either direction. This module reads requests off a client
connection; http_exchange carries each one to a backend and back. A WebSocket
handshake is routed like any request, and its backend's 101 turns both
connections into a byte tunnel (lab.balancer.tunnel). A connection's timeouts
are lab.balancer.client_timeouts; the answers it writes itself, lab.balancer.error_answers.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from time import monotonic
from typing import Final

import httptools

from lab.balancer.balancer import Balancer
from lab.balancer.client_timeouts import wake_by
from lab.balancer.error_answers import reject, write_error
from lab.balancer.http_exchange import Exchange
from lab.balancer.request_target import Reject, normalise, valid_host, validate
from lab.balancer.tunnel import Upgrade, accept_upgrade
from lab.proxy_protocol import HeaderReader, ProxyError

HEAD_LIMIT: Final = 16 * 1024  # bytes of request line + headers before we answer 431
# Hop-by-hop headers (RFC 9110 7.6.1) are about one connection, so they never cross the proxy.
# Content-Length and Transfer-Encoding are rewritten by us, from what the parser saw.
NOT_FORWARDED: Final = frozenset(
    b"connection keep-alive proxy-connection te trailer upgrade".split()
    + [b"transfer-encoding", b"content-length"]
)
# Headers on_header looks at more closely than "forward it as it is".
NOTED: Final = NOT_FORWARDED | {b"x-forwarded-for", b"x-forwarded-proto", b"host"}
# Header names most requests carry, none with "_" (see on_header).
COMMON: Final = frozenset(
    b"user-agent accept accept-encoding accept-language cookie content-type referer origin "
    b"authorization cache-control pragma if-none-match if-modified-since range".split()
)
# What a closed connection's parser becomes (connection_lost); nothing feeds this one.
SPENT_PARSER: Final = httptools.HttpRequestParser(object())
TWO_HOSTS: Final = "two Host headers: a backend and the routing rules could each read another"


class HttpClientConnection(asyncio.Protocol):
    """One client TCP connection; requests on it are handled strictly in order."""

    # connection_lost deletes `parsing` (mypyc allows `del` only of attributes named here).
    __deletable__ = ("parsing",)

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.client_ip_bytes = b""
        self.forwarded_for = b""  # X-Forwarded-For (when the client sent none) and -Proto
        self.proto = b"http"  # the scheme the client used: "https" once TLS is terminated
        self.tls = ""  # the route event's tls field, as JSON text, the same all connection long
        self.sni: str | None = None  # the name the client's TLS hello asked for
        self.exchanges: deque[Exchange] = deque()  # in arrival order; [0] is being served
        # The request being parsed: on_message_begin sets it before any other callback.
        # (Not Optional: compiled, a known type is read and written directly.)
        self.parsing: Exchange
        self.in_head = True
        self.head_raw = 0
        self.read_pauses: set[str] = set()
        self.write_paused = False
        self.client_eof = False
        self.closing = False
        self.good_host = b" "  # the last Host value found valid here (a space never is)
        self.done_reading = False  # a request said Connection: close; nothing after it is read
        self.rejected: tuple[int, str] | None = None  # an answer owed once in-flight ones finish
        self.upgrade: Upgrade | None = None  # a WebSocket handshake, the last request here
        # Timeouts share one lazy timer per connection: the hot path only notes the time
        # things happen, and the timer, when it fires, works out what is overdue
        # (lab.balancer.client_timeouts).
        self.timer: asyncio.TimerHandle | None = None
        self.timer_when = math.inf  # clock time the timer fires (inf: no timer)
        self.head_started = 0.0  # clock time the request head being read began
        self.idle_since = 0.0  # clock time the last answer finished (0: none yet)
        self.awaiting_proxy = False  # proxy_protocol.accept: a PROXY header comes first
        # Made only then: a Python-level object, about 1k instructions a connection.
        self.proxy_reader: HeaderReader | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.set_client(peer[0] if peer else "unknown")
        if self.balancer.proxy_accept:
            if not self.balancer.proxy_trusted.trusts(self.client_ip):
                self.refuse_proxy(
                    f"a PROXY header is believed only from proxy_protocol.trusted, "
                    f"and {self.client_ip} is not in it"
                )
                return
            self.awaiting_proxy = True
            self.proxy_reader = HeaderReader()
        self.head_started = monotonic()  # the first request head is due from now
        wake_by(self, self.head_started + self.balancer.client_header_s)

    def tls_made(self, transport: asyncio.Transport, client_ip: str, tls: str, sni: str | None):
        """The handshake is done (lab.balancer.tls_termination): HTTP starts, decrypted."""
        self.transport = transport
        self.proto = b"https"
        self.tls = tls
        self.sni = sni
        self.set_client(client_ip)  # a PROXY header, if any, came before the hello
        self.head_started = monotonic()
        wake_by(self, self.head_started + self.balancer.client_header_s)

    def set_client(self, ip: str) -> None:
        self.client_ip = ip
        self.client_ip_bytes = ip.encode()
        # X-Forwarded-Proto is always ours, "http" on a plain connection too (nginx's
        # $scheme): a client's own is dropped (on_header), so a backend can believe it.
        self.forwarded_for = b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n" % (
            self.client_ip_bytes,
            self.proto,
        )

    def data_received(self, data: bytes) -> None:
        if self.closing or self.rejected or self.done_reading:
            if self.upgrade is not None and not self.closing:  # read before the pause took
                self.upgrade.early.append(data)
            return
        if self.awaiting_proxy:
            data = self.proxy_header(data)
            if not data:
                return
        if self.in_head:
            if not self.head_raw:
                self.head_started = now = monotonic()
                when = now + self.balancer.client_header_s
                if when < self.timer_when:  # most often the timer already fires sooner
                    wake_by(self, when)
            self.head_raw += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # The handshake is parsed; what follows it is WebSocket, held for the tunnel.
            # (on_headers_complete took the handshake or refused it, so `upgrade` is set.)
            if self.upgrade is not None:
                self.upgrade.early.append(data[int(exc.args[0]) :])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, Reject):
                reject(self, cause.status, cause.reason)
            else:
                raise
        except httptools.HttpParserError as exc:
            if not self.done_reading:  # after Connection: close, what follows is ignored
                reject(self, 400, f"malformed request: {exc}")
        else:
            if self.in_head and self.head_raw > HEAD_LIMIT:
                reject(self, 431, f"request head is over {HEAD_LIMIT // 1024} KiB")

    def eof_received(self) -> bool:
        self.client_eof = True
        if any(not exchange.request_complete for exchange in self.exchanges):
            # Half a request and then FIN: it can never be finished, so nothing is owed.
            self.close()
            return False
        return bool(self.exchanges)  # keep the write side open to deliver pending answers

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
        for exchange in self.exchanges:
            exchange.abort()
        self.exchanges.clear()
        # Break the two reference cycles through this connection, the parser (which holds
        # its bound methods) and the last request parsed (which points back here), so that
        # reference counting frees it now, not the cycle collector later: about 15k
        # instructions a connection less (callgrind). No more bytes come.
        self.parser = SPENT_PARSER
        if hasattr(self, "parsing"):
            del self.parsing

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.exchanges and (upstream := self.exchanges[0].upstream) is not None:
            upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.exchanges and (upstream := self.exchanges[0].upstream) is not None:
            upstream.transport.resume_reading()

    def proxy_header(self, data: bytes) -> bytes:
        """Read the PROXY header that starts the connection; returns the bytes after it."""
        reader = self.proxy_reader
        assert reader is not None  # made with awaiting_proxy
        try:
            header, rest = reader.feed(data)
        except ProxyError as exc:
            self.refuse_proxy(f"{exc} (from {self.client_ip})")
            return b""
        if header is None:  # more to come (the client header timeout bounds the wait)
            return b""
        self.awaiting_proxy = False
        if header.source is not None:  # None: UNKNOWN or LOCAL, the proxy's own address
            self.set_client(header.source[0])
        return rest

    def refuse_proxy(self, reason: str) -> None:
        """A missing, malformed or untrusted PROXY header: close, as nginx and HAProxy do
        (the peer is a proxy, not a browser, so an HTTP answer would reach no one)."""
        self.balancer.publish_error(self.balancer.next_id(), None, reason, kind="proxy_protocol")
        self.close()

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.parsing = Exchange(self)
        self.exchanges.append(self.parsing)

    def on_url(self, url: bytes) -> None:
        exchange = self.parsing
        exchange.url += url
        exchange.head_size += len(url)
        if exchange.head_size > HEAD_LIMIT:
            raise Reject(431, f"request head is over {HEAD_LIMIT // 1024} KiB")

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.parsing
        if exchange.headers_done:
            return  # chunked trailers: dropped, we re-frame the body
        exchange.head_size += len(name) + len(value) + 4
        if exchange.head_size > HEAD_LIMIT:
            raise Reject(431, f"request head is over {HEAD_LIMIT // 1024} KiB")
        lower = name.lower()
        if lower not in NOTED:
            # A name with "_" is dropped, as nginx does (underscores_in_headers off): to a
            # CGI-style backend Content_Length and Content-Length are the same variable.
            # (Common names skip the search; `find`, as `in` on bytes costs a TypeError.)
            if lower not in COMMON and name.find(b"_") >= 0:
                return
            exchange.pairs.append((lower, value))
            exchange.lines.append(b"%s: %s\r\n" % (name, value))
            return
        exchange.pairs.append((lower, value))
        if lower == b"host":
            if exchange.has_host:
                raise Reject(400, TWO_HOSTS)
            if value != self.good_host:  # most connections send one Host all along
                if not valid_host(value):
                    raise Reject(400, f"invalid Host header {value[:100]!r}")
                self.good_host = value
            exchange.has_host = True
            exchange.lines.append(b"%s: %s\r\n" % (name, value))
        elif lower == b"connection":
            if exchange.connection is None:
                exchange.connection = []
            exchange.connection.append(value)
        elif lower == b"content-length":
            if exchange.content_lengths is None:
                exchange.content_lengths = []
            exchange.content_lengths.append(value.strip())
        elif lower == b"transfer-encoding":
            exchange.transfer_encoding = value
        elif lower == b"x-forwarded-proto":
            return  # the client's claim is not forwarded: ours says what it really used
        elif lower == b"x-forwarded-for":
            old = exchange.forwarded
            exchange.forwarded = old + b", " + value if old else value

    def on_headers_complete(self) -> None:
        exchange = self.parsing
        exchange.headers_done = True
        self.in_head = False
        exchange.raw_method = raw_method = self.parser.get_method()
        exchange.method = method = raw_method.decode("ascii", "replace")
        exchange.is_head = method == "HEAD"
        exchange.keep_alive = self.parser.should_keep_alive()
        if self.parser.should_upgrade():  # Upgrade: or CONNECT; WebSocket alone goes on
            accept_upgrade(self, exchange, self.parser.get_http_version())
        # Keep-alive with no Connection header can only be HTTP/1.1 to llhttp, which lets
        # 0.9, 1.0, 1.1 and 2.0 through; the others are worth asking the version.
        if not exchange.keep_alive or exchange.connection is not None:
            version = self.parser.get_http_version()
            if version != "1.1":
                if version != "1.0":  # llhttp lets 0.9 (no version) and 2.0 through
                    raise Reject(505, f"HTTP/{version} is not spoken here: HTTP/1.1 and 1.0 are")
                exchange.http10 = True
        if exchange.url[:1] != b"/" or exchange.connection is not None:
            normalise(exchange)  # an absolute-form target, or headers a Connection line names
        te = exchange.transfer_encoding
        exchange.chunked = te is not None and te.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
        if exchange.content_lengths is not None or not exchange.has_host:
            validate(exchange)  # only these can be refused; most requests skip the call
        if exchange is self.exchanges[0]:
            exchange.begin()

    def on_body(self, body: bytes) -> None:
        self.parsing.send_body(body)

    def on_message_complete(self) -> None:
        self.in_head = True
        self.head_raw = 0
        exchange = self.parsing
        if not exchange.keep_alive:  # Connection: close (or HTTP/1.0): the last request here
            self.done_reading = True
            self.pause_reading_for("close")
        if not exchange.finished:
            exchange.request_done()
        if len(self.exchanges) > 1:
            self.pause_reading_for("pipeline")  # one request ahead is plenty

    # -- called by exchanges ---------------------------------------------------------------

    def exchange_finished(self, exchange: Exchange, close: bool) -> None:
        exchanges = self.exchanges
        if exchanges and exchanges[0] is exchange:
            exchanges.popleft()
        if self.rejected and not exchanges:
            write_error(self, *self.rejected, close=True)
            self.close()
            return
        if close or self.closing or (self.client_eof and not exchanges):
            self.close()
            return
        if not exchanges:
            self.idle_since = now = monotonic()
            when = now + self.balancer.idle_s
            if when < self.timer_when:
                wake_by(self, when)
        if exchanges:
            nxt = exchanges[0]
            if nxt.headers_done and not nxt.finished:
                nxt.begin()
        if self.read_pauses and len(exchanges) <= 1:
            self.resume_reading_for("pipeline")

    def hand_over(self) -> None:
        """A tunnel takes this connection's transport (lab.balancer.tunnel): HTTP is over."""
        self.closing = True  # nothing here touches the transport again
        self.upgrade = None
        if self.timer is not None:
            self.timer.cancel()
        self.exchanges.clear()

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            if self.timer is not None:
                self.timer.cancel()
            for exchange in self.exchanges:
                exchange.abort()
            self.exchanges.clear()
            if self.transport is not None:
                self.transport.close()

    def pause_reading_for(self, why: str) -> None:
        if not self.read_pauses and self.transport is not None and not self.closing:
            self.transport.pause_reading()
        self.read_pauses.add(why)

    def resume_reading_for(self, why: str) -> None:
        if why in self.read_pauses:
            self.read_pauses.discard(why)
            if not self.read_pauses and self.transport is not None and not self.closing:
                self.transport.resume_reading()
