"""One HTTP request and its response as the Layer 7 proxy carries them: route, stream, finish.

An Exchange lives from the request's first header byte to the response's last
byte. It asks the balancer for a backend, takes a pooled upstream connection
(or opens one), retries on another backend when that is safe, and reports
route, done and error events.
"""

from __future__ import annotations

import asyncio
import ssl
from time import monotonic
from typing import TYPE_CHECKING, Final

from lab.balancer.algorithms import Decision, RequestInfo
from lab.balancer.backend import Backend
from lab.balancer.client_timeouts import wake_by
from lab.balancer.cookies import NO_CACHE, parse_cookies, without_cookie
from lab.balancer.error_answers import write_error
from lab.balancer.failover import failed_before_response
from lab.balancer.hop_by_hop import (
    body_runs_to_close,
    final_head,
    interim_heads,
    without_hop_by_hop,
)
from lab.balancer.retries import REPLAY_LIMIT
from lab.balancer.tls_context import tls_failure
from lab.balancer.upstream import UpstreamConnection

if TYPE_CHECKING:
    from lab.balancer.http_proxy import HttpClientConnection
    from lab.balancer.pool import Pool
    from lab.balancer.rules import Rule

# Body bytes held while an upstream connects, before we stop reading.
BUFFER_LIMIT: Final = 256 * 1024
CLOSE: Final = b"Connection: close\r\n"
KEEP_ALIVE: Final = b"Connection: keep-alive\r\n"  # only HTTP/1.0 clients need telling


class Exchange:
    """One request and its response, from the first header byte to the last response byte.

    This object is made for every request and read all along its way, so its fields
    are slots, all set at birth: a slot is the quickest attribute Python has to read.
    """

    __slots__ = (
        "client", "balancer", "lines", "pairs", "id", "method", "raw_method", "url",
        "head_size", "content_lengths", "forwarded", "has_host", "transfer_encoding",
        "chunked", "keep_alive", "is_head", "headers_done", "request_complete", "body",
        "buffered", "body_sent", "upstream", "backend", "tried", "attempts", "started",
        "response_started", "sent", "received", "finished", "info", "head", "pool", "rule",
        "set_cookie", "replay", "upstream_seen", "queued", "held", "head_out", "http10",
        "connection",
    )  # fmt: skip

    def __init__(self, client: HttpClientConnection) -> None:
        self.client = client
        self.balancer = client.balancer
        # The request head, as parsed.
        self.lines: list[bytes] = []  # header lines to forward, already framed
        self.pairs: list[tuple[bytes, bytes]] = []  # (lower-case name, value), as received
        self.id = ""
        self.method = ""
        self.raw_method = b""
        self.url = b""
        self.head_size = 0
        self.content_lengths: list[bytes] | None = None
        self.forwarded: bytes | None = None  # X-Forwarded-For from the client, if any
        self.has_host = False
        self.transfer_encoding: bytes | None = None
        self.chunked = False
        self.keep_alive = True
        self.http10 = False
        self.connection: list[bytes] | None = None  # Connection header values, if any
        self.is_head = False
        self.headers_done = False
        self.request_complete = False
        # The request body.
        self.body: list[bytes] | None = None  # framed body pieces waiting for an upstream
        self.buffered = 0
        self.body_sent = False
        self.replay: list[bytes] | None = None  # body pieces already sent, kept for a retry
        # Routing.
        self.info: RequestInfo | None = None
        self.head = b""
        self.pool: Pool | None = None  # the pool a rule (or the default) chose
        self.rule: Rule | None = None
        self.backend: Backend | None = None
        self.tried: tuple | list = ()  # backends that failed this request
        self.attempts = 0
        self.queued = False
        # The response.
        self.upstream: UpstreamConnection | None = None
        self.started = 0.0
        self.upstream_seen = 0.0  # clock time of the last sign of life from the backend
        self.response_started = False
        self.sent = 0  # response bytes to the client
        self.received = 0  # request body bytes from the client
        self.finished = False
        self.set_cookie: bytes | None = None  # a sticky cookie to insert into the response head
        self.held = b""  # response bytes held back until the final head is complete
        self.head_out = False  # has the final response head gone to the client?

    # -- the request -----------------------------------------------------------------

    def build_head(self) -> bytes:
        if self.forwarded:
            client = self.client
            xff = b"X-Forwarded-For: %s, %s\r\nX-Forwarded-Proto: %s\r\n" % (
                self.forwarded, client.client_ip_bytes, client.proto,
            )  # fmt: skip
        else:
            xff = self.client.forwarded_for  # the same line for every request on a connection
        framing = (
            b"Transfer-Encoding: chunked\r\n"
            if self.chunked
            else (
                b"Content-Length: %s\r\n" % self.content_lengths[0] if self.content_lengths else b""
            )
        )
        return b"".join(
            (self.raw_method, b" ", self.url, b" HTTP/1.1\r\n", *self.lines, xff, framing, b"\r\n")
        )

    def begin(self) -> None:
        """Headers are in and it is this request's turn: choose a backend and go."""
        self.started = monotonic()
        balancer = self.balancer
        self.id = balancer.next_id()
        path = self.url.decode("latin-1")
        if balancer.reads_headers:  # rules, a sticky cookie or a hash on a header
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.pairs}
            cookie = headers.get("cookie")
            cookies = parse_cookies(cookie) if cookie else None
            self.info = RequestInfo(self.client.client_ip, self.method, path, headers, cookies)
            if cookies and balancer.sticky.cookie in cookies:
                # `indirect`: the sticky cookie is the balancer's business, not the backend's.
                self.lines = without_cookie(self.lines, balancer.sticky.cookie)
        else:  # most settings never look at headers: skip decoding them
            self.info = RequestInfo(self.client.client_ip, self.method, path)
        if self.client.tls:
            self.info.sni = self.client.sni
        upgrade = self.client.upgrade
        if upgrade is not None and upgrade.exchange is self:
            self.info.upgrade = upgrade.protocol
        self.head = self.build_head()
        if balancer.rules:
            self.pool, self.rule = balancer.choose_pool(self.info)
        else:
            self.pool = balancer.default_pool
        self.route()

    def route(self, waited_ms: float = 0.0) -> None:
        balancer = self.balancer
        outcome = balancer.route(self.info, self.tried, self.pool)
        if not isinstance(outcome, Decision):
            if outcome.can_wait and not self.queued:
                if balancer.queue.join(self.pool, self, outcome.reason):
                    self.queued = True
                    return
                outcome.reason += f"; the queue is full ({balancer.config.max_queue} waiting)"
            self.answer(503, outcome.reason)
            return
        self.queued = False
        if waited_ms:
            outcome.reason = f"waited {waited_ms:.0f} ms for a free slot; {outcome.reason}"
        if self.rule is not None:
            outcome.reason = (
                f"rule {self.rule.name} ({self.rule.describe()}) sends it to pool "
                f"{self.pool.name}; {outcome.reason}"
            )
        self.backend = backend = outcome.backend
        self.attempts += 1
        if self.attempts == 1:
            balancer.retry_budget.request()
        if balancer.sticky.cookie is not None:
            name = balancer.sticky.cookie
            if (self.info.cookies or {}).get(name) != backend.name:
                self.set_cookie = b"Set-Cookie: %s=%s; Path=/; HttpOnly\r\n" % (
                    name.encode(), backend.name.encode(),
                )  # fmt: skip
            else:
                self.set_cookie = None
        # A handshake takes a new connection, which becomes its tunnel: on a pooled one the
        # backend may have closed while idle, and a handshake is never sent twice.
        conn = balancer.upstreams.take_idle(backend) if not self.info.upgrade else None
        if conn is not None:
            self.attach(conn)
        else:
            self.client.loop.create_task(self.connect(backend))
        # Observers hear of it once the request is on its way: the event waits, not the request.
        balancer.publish_route(
            self.id, self.info, outcome, self.attempts - 1, self.pool, self.rule, self.client.tls
        )

    # -- waiting in the queue (see lab.balancer.queue) ---------------------------------

    def resume_routing(self, waited_ms: float) -> None:
        self.queued = False  # out of the queue: if the slot is gone again, it may wait again
        self.route(waited_ms)

    def give_up(self, reason: str) -> None:
        self.queued = False
        self.answer(503, reason)

    async def connect(self, backend: Backend) -> None:
        timeouts = self.balancer.config.timeouts
        try:
            conn = await self.balancer.upstreams.connect(backend, timeouts.connect_ms / 1000)
        except (TimeoutError, OSError) as exc:
            if not self.finished and self.backend is backend:
                if isinstance(exc, asyncio.TimeoutError):
                    why = f"did not accept the connection within {timeouts.connect_ms} ms"
                elif isinstance(exc, ssl.SSLError):  # tls.upstream: verification, mostly
                    why = f"failed the TLS handshake (tls.upstream): {tls_failure(exc)}"
                else:
                    why = "refused the connection"
                failed_before_response(self, f"{backend.name} {why}", count_failure=True)
            return
        if self.finished or self.backend is not backend:
            self.balancer.upstreams.put_idle(conn)
            return
        self.attach(conn)

    def attach(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        self.upstream_seen = now = monotonic()
        when = now + self.balancer.backend_response_s
        if when < self.client.timer_when:  # most often the timer already fires sooner
            wake_by(self.client, when)
        conn.start(self)
        if self.content_lengths or self.chunked:  # keep the body for a retry, while small
            self.replay = list(self.body or ()) if self.buffered <= REPLAY_LIMIT else None
        if self.body is None and not self.chunked:  # the common case: a head, and no body yet
            conn.transport.write(self.head)
        else:
            body = self.body or []
            self.body_sent = bool(body)
            parts = [self.head, *body]
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
            if self.replay is not None:
                self.replay.append(framed)
                if self.received > REPLAY_LIMIT:
                    self.replay = None
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
        self.end(status, not self.request_complete, now=self.upstream_seen)

    def response_head(self, data: bytes, conn: UpstreamConnection) -> bytes:
        """What of the response may go to the client now. Bytes are held until the final
        head is in; then its hop-by-hop lines give way to the balancer's own Connection
        line, and a sticky cookie goes in. Most heads pass untouched, never searched."""
        if not conn.head_parsed:
            held = self.held + data
            ready = interim_heads(held)
            self.held = held[ready:]
            return held[:ready]
        held = self.held + data if self.held else data
        self.held = b""
        self.head_out = True
        close = not (self.keep_alive and self.request_complete)
        cookie = self.set_cookie
        if not (close or self.http10 or cookie is not None or conn.hop or conn.until_close):
            return held
        start, end = final_head(held)
        head = held[start:end]
        if conn.until_close and body_runs_to_close(head, conn.status, self.is_head):
            close = True  # the client learns where the body ends from our close
        if close:
            self.keep_alive = False
            extra = CLOSE
        else:
            extra = KEEP_ALIVE if self.http10 else b""
        if cookie is not None:
            extra += cookie + NO_CACHE
            self.set_cookie = None
        if conn.hop:
            head = without_hop_by_hop(head)
        return b"".join((held[:start], head, extra, held[end:]))

    def end(
        self,
        status: int,
        close: bool = False,
        failed: bool = False,
        why: str = "",
        now: float = 0.0,
    ) -> None:
        """The response is over (`now`: when its last bytes came, if just noted)."""
        if self.finished:
            return
        self.finished = True
        ms = ((now or monotonic()) - self.started) * 1000.0
        backend = self.backend
        if failed or status >= 500:
            self.balancer.release(
                backend, ms, failed=True, why=why or f"answered {status}", http_error=not failed
            )
        else:
            self.balancer.release(backend, ms)
        self.balancer.publish_done(self.id, backend, status, ms, self.sent, self.received)
        self.client.exchange_finished(self, close or not self.keep_alive)

    def answer(self, status: int, reason: str) -> None:
        """Answer the client ourselves (no backend involved)."""
        if self.finished:
            return
        self.finished = True
        close = not (self.keep_alive and self.request_complete)
        write_error(self.client, status, reason, close)
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
            ms = (monotonic() - self.started) * 1000.0
            self.balancer.release(self.backend, None)
            self.balancer.publish_done(self.id, self.backend, 499, ms, self.sent, self.received)
