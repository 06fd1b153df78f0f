"""One HTTP request and its response as the Layer 7 proxy carries them: route, stream, finish.

An Exchange lives from the request's first header byte to the response's last
byte. It asks the balancer for a backend, takes a pooled upstream connection
(or opens one), retries on another backend when that is safe, and reports
route, done and error events.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING

from lab.balancer.algorithms import RequestInfo
from lab.balancer.balancer import CONNECT_TIMEOUT_S
from lab.balancer.upstream import UpstreamConnection

if TYPE_CHECKING:
    from lab.balancer.http_proxy import HttpClientConnection

BUFFER_LIMIT = 256 * 1024  # body bytes held while an upstream connects, before we stop reading
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
    """One request and its response, from the first header byte to the last response byte.

    Most fields start as class-level defaults and are set only when a request needs
    them: this object is made for every request, so its birth must be cheap.
    """

    id = ""
    method = ""
    url = b""
    head_size = 0
    content_lengths: list[bytes] | None = None
    forwarded: bytes | None = None  # X-Forwarded-For from the client, if any
    has_host = False
    transfer_encoding: bytes | None = None
    chunked = False
    keep_alive = True
    is_head = False
    headers_done = False
    request_complete = False
    body: list[bytes] | None = None  # framed body pieces waiting for an upstream
    buffered = 0
    body_sent = False
    upstream: UpstreamConnection | None = None
    backend = None
    tried: tuple | list = ()  # backends that failed this request
    attempts = 0
    started = 0.0
    response_started = False
    sent = 0  # response bytes to the client
    received = 0  # request body bytes from the client
    finished = False
    info: RequestInfo | None = None
    head = b""

    def __init__(self, client: HttpClientConnection) -> None:
        self.client = client
        self.balancer = client.balancer
        self.lines: list[bytes] = []  # header lines to forward, already framed
        self.pairs: list[tuple[bytes, bytes]] = []  # (lower-case name, value), as received

    # -- the request -----------------------------------------------------------------

    def validate(self) -> None:
        """Refuse what a chain of HTTP parsers could disagree on (request smuggling)."""
        lengths = self.content_lengths
        if lengths and self.transfer_encoding is not None:
            raise Reject(
                400, "both Content-Length and Transfer-Encoding sent (request smuggling guard)"
            )
        if lengths and len(set(lengths)) > 1:
            raise Reject(400, "conflicting Content-Length headers (request smuggling guard)")
        if not self.has_host and self.client.parser.get_http_version() == "1.1":
            raise Reject(400, "HTTP/1.1 request without a Host header")

    def build_head(self) -> bytes:
        client_ip = self.client.client_ip_bytes
        xff = self.forwarded + b", " + client_ip if self.forwarded else client_ip
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
                xff,
                b"\r\n",
                framing,
                b"\r\n",
            )
        )

    def begin(self) -> None:
        """Headers are in and it is this request's turn: choose a backend and go."""
        self.started = perf_counter()
        balancer = self.balancer
        self.id = balancer.next_id()
        self.head = self.build_head()
        path = self.url.decode("latin-1")
        if balancer.pool.algorithm.reads_headers:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.pairs}
            cookie = headers.get("cookie")
            cookies = parse_cookies(cookie) if cookie else None
            self.info = RequestInfo(self.client.client_ip, self.method, path, headers, cookies)
        else:  # most algorithms never look at headers: skip decoding them
            self.info = RequestInfo(self.client.client_ip, self.method, path)
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
        if self.body is None and not self.chunked:  # the common case: a head, and no body yet
            conn.transport.write(self.head)
        else:
            parts = [self.head, *(self.body or ())]
            self.body_sent = bool(self.body)
            if self.request_complete and self.chunked:
                parts.append(b"0\r\n\r\n")
            self.body = None
            self.buffered = 0
            conn.transport.write(b"".join(parts))
        client = self.client
        if client.write_paused:
            conn.transport.pause_reading()
        if client.read_pauses:
            client.resume_reading_for("buffer")

    def send_body(self, data: bytes) -> None:
        self.received += len(data)
        framed = b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data
        if self.upstream is not None:
            self.body_sent = True
            self.upstream.transport.write(framed)
        else:
            if self.body is None:
                self.body = []
            self.body.append(framed)
            self.buffered += len(framed)
            if self.buffered > BUFFER_LIMIT:
                self.client.pause_reading_for("buffer")

    def request_done(self) -> None:
        self.request_complete = True
        if self.chunked and self.upstream is not None:
            self.upstream.transport.write(b"0\r\n\r\n")

    # -- the response ----------------------------------------------------------------

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
            # The client learns it from the connection closing. A body that runs to the
            # close has simply ended; any other body was cut off, and that is a failure.
            cut_off = not conn.until_close
            if cut_off:
                self.balancer.publish_error(
                    self.id, None,
                    f"{conn.backend.name} closed the connection mid-response; "
                    "the client got a cut-off answer",
                    conn.backend, kind="cut-off",
                )  # fmt: skip
            # A cut-off answer is reported as 502 (with the error event saying why), so
            # whoever draws the done event sees a failure, not the 200 that began it.
            self.end(502 if cut_off else conn.status, close=True, failed=cut_off)
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
            self.tried = [*self.tried, backend]
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


def parse_cookies(header: str) -> dict[str, str]:
    """'a=1; b=2' -> {'a': '1', 'b': '2'}; lenient, like browsers (RFC 6265 5.2)."""
    cookies = {}
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        if sep:
            cookies[name.strip()] = value.strip().strip('"')
    return cookies
