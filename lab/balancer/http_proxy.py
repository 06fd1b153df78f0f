"""Layer 7: an HTTP/1.1 reverse proxy that makes one routing decision per request.

The shell is thin: parse (httptools) -> choose (the pool's algorithm) -> send
the request head and stream the body to a pooled upstream connection ->
stream the response back byte for byte -> publish events. Bodies are never
buffered whole in either direction.
"""

from __future__ import annotations

import asyncio
from collections import deque
from time import perf_counter

import httptools

from lab.balancer.algorithms import RequestInfo
from lab.balancer.balancer import CONNECT_TIMEOUT_S, Balancer
from lab.balancer.upstream import UpstreamConnection

HEAD_LIMIT = 16 * 1024  # bytes of request line + headers before we answer 431
BUFFER_LIMIT = 256 * 1024  # body bytes held while an upstream connects, before we stop reading
# Hop-by-hop headers (RFC 9110 7.6.1) are about one connection, so they never cross the proxy.
# Content-Length and Transfer-Encoding are rewritten by us, from what the parser saw.
NOT_FORWARDED = frozenset(
    b"connection keep-alive proxy-connection te trailer upgrade".split()
    + [b"transfer-encoding", b"content-length"]
)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
REASONS = {
    400: "Bad Request",
    431: "Request Header Fields Too Large",
    499: "Client Closed Request",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class Reject(Exception):
    """A request we refuse to forward, with the status and the learner-readable reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Exchange:
    """One request and its response, from the first header byte to the last response byte."""

    __slots__ = (
        "client",
        "balancer",
        "id",
        "method",
        "url",
        "lines",
        "headers",
        "head_size",
        "content_lengths",
        "transfer_encoding",
        "chunked",
        "keep_alive",
        "is_head",
        "headers_done",
        "request_complete",
        "body",
        "buffered",
        "body_sent",
        "upstream",
        "backend",
        "tried",
        "attempts",
        "started",
        "response_started",
        "sent",
        "received",
        "finished",
        "info",
        "head",
    )

    def __init__(self, client: HttpClientConnection) -> None:
        self.client = client
        self.balancer = client.balancer
        self.id = ""
        self.method = ""
        self.url = b""
        self.lines: list[bytes] = []  # header lines to forward, already framed
        self.headers: dict[str, str] = {}  # lower-case name -> value, for algorithms
        self.head_size = 0
        self.content_lengths: list[bytes] = []
        self.transfer_encoding: bytes | None = None
        self.chunked = False
        self.keep_alive = True
        self.is_head = False
        self.headers_done = False
        self.request_complete = False
        self.body: list[bytes] = []  # framed body pieces waiting for an upstream
        self.buffered = 0
        self.body_sent = False
        self.upstream: UpstreamConnection | None = None
        self.backend = None
        self.tried: list = []  # backends that failed this request
        self.attempts = 0
        self.started = 0.0
        self.response_started = False
        self.sent = 0  # response bytes to the client
        self.received = 0  # request body bytes from the client
        self.finished = False
        self.info: RequestInfo | None = None
        self.head = b""

    # -- the request -----------------------------------------------------------------

    def validate(self) -> None:
        """Refuse what a chain of HTTP parsers could disagree on (request smuggling)."""
        if self.transfer_encoding is not None and self.content_lengths:
            raise Reject(
                400, "both Content-Length and Transfer-Encoding sent (request smuggling guard)"
            )
        if len(set(self.content_lengths)) > 1:
            raise Reject(400, "conflicting Content-Length headers (request smuggling guard)")
        if "host" not in self.headers and self.client.parser.get_http_version() == "1.1":
            raise Reject(400, "HTTP/1.1 request without a Host header")

    def build_head(self) -> bytes:
        client_ip = self.client.client_ip
        forwarded = self.headers.get("x-forwarded-for")
        xff = f"{forwarded}, {client_ip}" if forwarded else client_ip
        framing = (
            b"Transfer-Encoding: chunked\r\n"
            if self.chunked
            else (
                b"Content-Length: %s\r\n" % self.content_lengths[0] if self.content_lengths else b""
            )
        )
        return b"".join(
            (
                self.method.encode(),
                b" ",
                self.url,
                b" HTTP/1.1\r\n",
                *self.lines,
                b"X-Forwarded-For: ",
                xff.encode(),
                b"\r\n",
                framing,
                b"\r\n",
            )
        )

    def begin(self) -> None:
        """Headers are in and it is this request's turn: choose a backend and go."""
        self.started = perf_counter()
        self.id = self.balancer.next_id()
        self.head = self.build_head()
        path = self.url.decode("latin-1")
        cookie = self.headers.get("cookie")
        self.info = RequestInfo(
            self.client.client_ip,
            self.method,
            path,
            self.headers,
            parse_cookies(cookie) if cookie else None,
        )
        self.route()

    def route(self) -> None:
        decision = self.balancer.route(self.info, self.tried)
        if decision is None:
            why = "no healthy backend" if not self.tried else "every backend failed this request"
            self.answer(503, why)
            return
        self.backend = decision.backend
        self.attempts += 1
        self.balancer.publish_route(self.id, self.info, decision, retry=self.attempts - 1)
        conn = self.balancer.upstreams.take_idle(self.backend)
        if conn is not None:
            self.attach(conn)
        else:
            self.client.loop.create_task(self.connect(self.backend))

    async def connect(self, backend) -> None:
        try:
            conn = await self.balancer.upstreams.connect(backend, CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError) as exc:
            if not self.finished:
                why = (
                    "timed out"
                    if isinstance(exc, asyncio.TimeoutError)
                    else "refused the connection"
                )
                self.failed_before_response(f"{backend.name} {why}", count_failure=True)
            return
        if self.finished or self.backend is not backend:
            self.balancer.upstreams.put_idle(conn)
            return
        self.attach(conn)

    def attach(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        conn.start(self)
        parts = [self.head, *self.body]
        if self.body:
            self.body_sent = True
        if self.request_complete and self.chunked:
            parts.append(b"0\r\n\r\n")
        self.body.clear()
        self.buffered = 0
        conn.transport.write(b"".join(parts))
        if self.client.write_paused:
            conn.transport.pause_reading()
        self.client.resume_reading_for("buffer")

    def send_body(self, data: bytes) -> None:
        self.received += len(data)
        framed = b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data
        if self.upstream is not None:
            self.body_sent = True
            self.upstream.transport.write(framed)
        else:
            self.body.append(framed)
            self.buffered += len(framed)
            if self.buffered > BUFFER_LIMIT:
                self.client.pause_reading_for("buffer")

    def request_done(self) -> None:
        self.request_complete = True
        if self.chunked and self.upstream is not None:
            self.upstream.transport.write(b"0\r\n\r\n")

    # -- the response ----------------------------------------------------------------

    def response_data(self, data: bytes) -> None:
        self.response_started = True
        self.sent += len(data)
        self.client.transport.write(data)

    def response_complete(self, conn: UpstreamConnection) -> None:
        if not self.request_complete:
            conn.keep_alive = (
                False  # the backend answered early; the rest of the body would desync it
            )
        status = conn.status
        conn.finish()
        self.upstream = None
        self.end(status, close=not self.request_complete)

    def upstream_failed(self, conn: UpstreamConnection, reason: str) -> None:
        conn.close()
        self.upstream = None
        if self.response_started:
            self.end(conn.status or 502, close=True, failed=True)
        else:
            self.failed_before_response(reason, count_failure=True)

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        """The backend closed the connection before the response was complete."""
        self.upstream = None
        if self.response_started:
            # A body delimited by close ends here; a truncated one must be seen as truncated.
            # Either way the client learns it from the connection closing.
            self.end(conn.status, close=True)
        else:
            # A reused keep-alive connection may have been closed by the backend while idle:
            # that is ordinary, not the backend's failure.
            fresh = conn.served == 0
            self.failed_before_response(
                f"{conn.backend.name} closed the connection before answering",
                count_failure=fresh,
                retry_ok=self.method in IDEMPOTENT,
            )

    def failed_before_response(
        self, reason: str, count_failure: bool, retry_ok: bool = True
    ) -> None:
        backend = self.backend
        self.balancer.release(backend, None, failed=count_failure)
        if count_failure:
            self.tried.append(backend)
        self.backend = None
        # Nothing of the body has reached a backend, so sending it again cannot duplicate it.
        if (
            retry_ok
            and not self.body_sent
            and self.attempts <= len(self.balancer.pool.backends) + 1
        ):
            self.balancer.publish_error(
                self.id, None, reason + "; trying another", backend, kind="retry"
            )
            self.route()
        else:
            self.answer(502, reason)

    def end(self, status: int, close: bool = False, failed: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        ms = (perf_counter() - self.started) * 1000.0
        backend = self.backend
        self.balancer.release(backend, ms, failed=failed or status >= 500)
        self.balancer.publish_done(self.id, backend, status, ms, self.sent, self.received)
        self.client.exchange_finished(self, close=close or not self.keep_alive)

    def answer(self, status: int, reason: str) -> None:
        """Answer the client ourselves (no backend involved)."""
        if self.finished:
            return
        self.finished = True
        close = not (self.keep_alive and self.request_complete)
        self.client.write_error(status, reason, close)
        self.balancer.publish_error(self.id or self.balancer.next_id(), status, reason)
        self.client.exchange_finished(self, close=close)

    def abort(self) -> None:
        """The client went away mid-exchange."""
        if self.finished:
            return
        self.finished = True
        if self.upstream is not None:
            self.upstream.close()  # half a response is left in it; never reuse
            self.upstream = None
        if self.backend is not None:
            ms = (perf_counter() - self.started) * 1000.0
            self.balancer.release(self.backend, None)
            self.balancer.publish_done(self.id, self.backend, 499, ms, self.sent, self.received)


class HttpClientConnection(asyncio.Protocol):
    """One client TCP connection; requests on it are handled strictly in order."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.exchanges: deque[Exchange] = deque()  # in arrival order; [0] is being served
        self.parsing: Exchange | None = None
        self.in_head = True
        self.head_raw = 0
        self.read_pauses: set[str] = set()
        self.write_paused = False
        self.client_eof = False
        self.closing = False

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else "unknown"

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.in_head:
            self.head_raw += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.reject(
                501, "protocol upgrades (such as WebSocket) are not supported at Layer 7 here"
            )
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, Reject):
                self.reject(cause.status, cause.reason)
            else:
                raise
        except httptools.HttpParserError as exc:
            self.reject(400, f"malformed request: {exc}")
        else:
            if self.in_head and self.head_raw > HEAD_LIMIT:
                self.reject(431, f"request head is over {HEAD_LIMIT // 1024} KiB")

    def eof_received(self) -> bool:
        self.client_eof = True
        return bool(self.exchanges)  # keep the write side open to deliver pending answers

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        for exchange in self.exchanges:
            exchange.abort()
        self.exchanges.clear()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.exchanges and (upstream := self.exchanges[0].upstream) is not None:
            upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.exchanges and (upstream := self.exchanges[0].upstream) is not None:
            upstream.transport.resume_reading()

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
        if lower == b"content-length":
            exchange.content_lengths.append(value.strip())
        elif lower == b"transfer-encoding":
            exchange.transfer_encoding = value
        exchange.headers[lower.decode("latin-1")] = value.decode("latin-1")
        if lower not in NOT_FORWARDED and lower != b"x-forwarded-for":
            exchange.lines.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        exchange = self.parsing
        exchange.headers_done = True
        self.in_head = False
        exchange.method = method = self.parser.get_method().decode("ascii", "replace")
        exchange.is_head = method == "HEAD"
        exchange.keep_alive = self.parser.should_keep_alive()
        te = exchange.transfer_encoding
        exchange.chunked = te is not None and te.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
        exchange.validate()
        if exchange is self.exchanges[0]:
            exchange.begin()

    def on_body(self, body: bytes) -> None:
        self.parsing.send_body(body)

    def on_message_complete(self) -> None:
        self.in_head = True
        self.head_raw = 0
        exchange = self.parsing
        if not exchange.finished:
            exchange.request_done()
        if len(self.exchanges) > 1:
            self.pause_reading_for("pipeline")  # one request ahead is plenty

    # -- called by exchanges ---------------------------------------------------------------

    def exchange_finished(self, exchange: Exchange, close: bool) -> None:
        if self.exchanges and self.exchanges[0] is exchange:
            self.exchanges.popleft()
        if close or self.closing or (self.client_eof and not self.exchanges):
            self.close()
            return
        if not self.exchanges:
            self.resume_reading_for("pipeline")
            return
        nxt = self.exchanges[0]
        if nxt.headers_done and not nxt.finished:
            nxt.begin()
        if len(self.exchanges) <= 1:
            self.resume_reading_for("pipeline")

    def write_error(self, status: int, reason: str, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        body = f"{status} {REASONS.get(status, '')}: {reason}\n".encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nX-Balancer: lb-lab\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
        ).encode()
        self.transport.write(head + body)

    def reject(self, status: int, reason: str) -> None:
        """Refuse a bad request and close: after a parse error the byte stream cannot be trusted."""
        in_flight = [e for e in self.exchanges if e.backend is not None and not e.finished]
        if not in_flight:
            self.write_error(status, reason, close=True)
        self.balancer.publish_error(self.balancer.next_id(), status, reason)
        self.close()

    def close(self) -> None:
        if not self.closing:
            self.closing = True
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


def parse_cookies(header: str) -> dict[str, str]:
    """'a=1; b=2' -> {'a': '1', 'b': '2'}; lenient, like browsers (RFC 6265 5.2)."""
    cookies = {}
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        if sep:
            cookies[name.strip()] = value.strip().strip('"')
    return cookies
