"""One client connection to a toy backend: parse HTTP/1.1, answer in order, keep it alive.

An asyncio Protocol (not streams) fed by httptools. Each complete request goes
to the app's `answer(request)`, which returns response bytes at once (the
common case: no task, no await) or an awaitable of them when a knob makes the
request wait. Pipelined requests queue behind a waiting one, so responses
always leave in the order the requests came. What a request is, as the app
sees it, is lab.backend.request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import sys
import traceback
from collections import deque
from collections.abc import Awaitable

import httptools

from lab.backend import websocket
from lab.backend.request import EMPTY_SHA256, App, Request
from lab.backend.responses import CLOSE, CONTINUE, json_body
from lab.backend.tls import Handshake, handshake
from lab.http_api import BODY_LIMIT, BODY_TOO_LARGE, error_body
from lab.proxy_protocol import (
    LOOPBACK,
    V1_PREFIX,
    V2_SIGNATURE,
    HeaderReader,
    ProxyError,
    TrustedSources,
)

# Request line plus headers. Above the APIs' HEAD_LIMIT (16 KiB) on purpose: a backend takes
# whatever head the balancer forwards, which is up to that limit plus the headers it adds.
MAX_HEAD_BYTES = 64 * 1024
MAX_KEPT_BODY = BODY_LIMIT  # /_lab/ requests keep their body; the rest is hashed and dropped
MAX_PIPELINE = 64  # queued requests on one connection before we stop reading from it
# Without --proxy-protocol a PROXY header is still read if one comes first, but only from
# loopback (the lab's balancer): anyone else could claim to be any client.
HEADER_TRUSTED = TrustedSources(LOOPBACK)


class Refused(Exception):
    """Raised inside a parser callback to stop a request: (status, reason)."""


class HttpConnection(asyncio.Protocol):
    """Serves the HTTP/1.x requests of one TCP connection."""

    def __init__(self, app: App, proxy_protocol: bool = False, tls: bool = False) -> None:
        self._app = app
        self._on_tls = tls  # accepted by the TLS listener (lab.backend.tls)
        self._tls: Handshake | None = None
        # A PROXY header (a balancer's proxy_protocol.send, HAProxy's send-proxy) names the
        # client, so the answer's "client" is the real one even at Layer 4. --proxy-protocol
        # requires one, as nginx's `listen ... proxy_protocol` does. Without it, one is read
        # when the first bytes are a PROXY header's: the lab's balancer sends it only at
        # Layer 4 with send on, while its health checks and Layer 7 requests come without.
        self._proxy_required = proxy_protocol
        self._awaiting_proxy = True
        self._proxy_reader = HeaderReader()
        self._proxy_client: str | None = None
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._client = ""
        self._queue: deque[Request] = deque()
        self._busy = False  # a response is being waited for; later requests queue
        self._task: asyncio.Task | None = None
        self._closing = False
        self._stop_reading = False  # after a malformed request nothing more is read
        self._write_paused = False
        self._reading = True
        self._handshake: Request | None = None  # a WebSocket handshake, answered in turn
        self._early: list[bytes] | None = None  # after a WebSocket handshake: what came next
        self._begin()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self._client = self._peer = peer[0] if isinstance(peer, tuple) else ""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._app.connections += 1
        if self._on_tls:  # asyncio calls this once the handshake is done
            self._tls = handshake(transport.get_extra_info("ssl_object"))
            if self._tls is not None:
                self._app.tls.record(self._tls)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
        self._app.connections -= 1

    def data_received(self, data: bytes) -> None:
        if self._early is not None:  # WebSocket frames, kept until the handshake is answered
            self._early.append(data)
            return
        if self._closing or self._stop_reading:
            return
        if self._awaiting_proxy:
            data = self._proxy_header(data)
            if not data:
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # A WebSocket handshake waits its turn (its frames with it), or the request was
            # answered 501 already (on_message_complete); what follows is not HTTP/1.1.
            self._stop_reading = True
            if self._handshake is not None:
                self._early = [data[int(exc.args[0]) :]]
                self._transport.pause_reading()
                self._enqueue(self._handshake)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, Refused):
                self._reject(*exc.__context__.args)
            else:  # a bug of ours in a callback: say so, keep the process serving
                traceback.print_exception(exc.__context__ or exc, file=sys.stderr)
                self._reject(500, "internal error in the toy backend (logged)")
        except httptools.HttpParserError as exc:
            self._reject(400, f"malformed request: {exc}")

    def _proxy_header(self, data: bytes) -> bytes:
        reader = self._proxy_reader
        if not self._proxy_required:
            start = _header_start(reader.received + data)
            if start is None:  # too few bytes to tell a PROXY header from a request
                reader.received += data
                return b""
            if not start:
                self._awaiting_proxy = False
                received, reader.received = reader.received + data, b""
                return received
            if not HEADER_TRUSTED.trusts(self._peer):
                why = f"a PROXY header is believed only from loopback, not from {self._peer}"
                self._reject(400, why)
                return b""
        try:
            header, rest = reader.feed(data)
        except ProxyError as exc:
            self._reject(400, f"this backend expects a PROXY header first: {exc}")
            return b""
        if header is None:
            return b""
        self._awaiting_proxy = False
        if header.source is not None:  # not for UNKNOWN or LOCAL: keep the peer
            self._client = self._proxy_client = header.source[0]
        return rest

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    # -- httptools callbacks

    def _begin(self) -> None:
        self._url = b""
        self._head_bytes = 0
        self._body_length = 0
        self._hasher = None
        self._body: bytearray | None = None
        self._forwarded_for: str | None = None
        self._expect_continue = False
        self._upgrade = b""
        self._websocket_key: bytes | None = None

    def on_message_begin(self) -> None:
        self._begin()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        size = len(name)
        if size == 6 and name.lower() == b"expect":
            self._expect_continue = value.lower() == b"100-continue"
        elif size == 15 and name.lower() == b"x-forwarded-for":
            self._forwarded_for = value.decode("latin-1")
        elif size == 7 and name.lower() == b"upgrade":
            self._upgrade = value.strip().lower()
        elif size == 17 and name.lower() == b"sec-websocket-key":
            self._websocket_key = value

    def on_headers_complete(self) -> None:
        if self._url.startswith(b"/_lab/"):
            self._body = bytearray()
        # curl waits for this before sending a large upload. Behind a pending
        # response it would jump the queue, so then we stay quiet and the
        # client sends the body after its own short timeout.
        if self._head_expects_continue() and not (self._busy or self._queue or self._closing):
            self._transport.write(CONTINUE)

    def on_body(self, chunk: bytes) -> None:
        self._body_length += len(chunk)
        if self._hasher is None:
            self._hasher = hashlib.sha256()
        self._hasher.update(chunk)
        if self._body is not None:
            self._body += chunk
            if len(self._body) > MAX_KEPT_BODY:
                raise Refused(413, BODY_TOO_LARGE)

    def on_message_complete(self) -> None:
        target = self._url.decode("latin-1")
        path, _, query = target.partition("?")
        parser = self._parser
        method = parser.get_method()
        if method == b"CONNECT":  # a tunnel request; the rest of the stream is not HTTP
            self._reject(405, "this backend does not tunnel (CONNECT)")
            return
        if parser.should_upgrade():
            if self._upgrade == b"websocket" and method == b"GET" and path == websocket.PATH:
                if self._websocket_key:
                    # Enqueued by data_received, with the bytes after it (llhttp stops here).
                    self._handshake = Request("GET", target, path, query, "1.1", True, "")
                    self._handshake.websocket_key = self._websocket_key
                    return
                self._reject(400, "a WebSocket handshake needs Sec-WebSocket-Key")
                return
            # It waits for a 101 that never comes: say so, then close.
            self._reject(501, f"this toy backend upgrades only GET {websocket.PATH} (to WebSocket)")
            return
        request = Request(
            method.decode("latin-1"),
            target,
            path,
            query,
            parser.get_http_version(),
            parser.should_keep_alive(),
            self._client,
            self._body_length,
            EMPTY_SHA256 if self._hasher is None else self._hasher.hexdigest(),
            None if self._body is None else bytes(self._body),
            self._forwarded_for,
            self._peer,
            self._proxy_client,
        )
        if self._tls is not None:
            request.tls = self._tls.json
        self._enqueue(request)

    # -- answering in order

    def _enqueue(self, request: Request) -> None:
        if self._closing:
            return
        if self._busy:
            self._queue.append(request)
            self._update_reading()
        else:
            self._dispatch(request)

    def _dispatch(self, request: Request) -> None:
        if request.websocket_key is not None:
            self._switch(request.websocket_key)
            return
        if request.problem is not None:
            status, reason = request.problem
            result = self._app.framer.full(status, json_body(error_body(reason)), connection=CLOSE)
        else:
            try:
                result = self._app.answer(request)
            except Exception:
                result = self._crashed(request)
        if isinstance(result, bytes):
            self._send(result, request.keep_alive)
        else:
            self._busy = True
            self._task = asyncio.ensure_future(self._answer_later(result, request))

    async def _answer_later(self, pending: Awaitable[bytes], request: Request) -> None:
        try:
            response = await pending
        except asyncio.CancelledError:
            raise
        except Exception:
            response = self._crashed(request)
        self._busy = False
        self._task = None
        self._send(response, request.keep_alive)
        while self._queue and not self._busy and not self._closing:
            self._dispatch(self._queue.popleft())
        self._update_reading()

    def _send(self, response: bytes, keep_alive: bool) -> None:
        if self._closing:
            return
        self._transport.write(response)
        if not keep_alive:
            self._closing = True
            self._transport.close()  # after the buffered response has gone out

    def _crashed(self, request: Request) -> bytes:
        # Never take the process down for one bad request: log it, answer 500, drop the connection.
        traceback.print_exc(file=sys.stderr)
        request.keep_alive = False
        body = json_body(
            error_body(f"internal error in the toy backend at {request.path} (logged)")
        )
        return self._app.framer.full(500, body, connection=CLOSE)

    # -- the unusual cases

    def _switch(self, key: bytes) -> None:
        """Answer a WebSocket handshake with 101 and hand the connection to the echo."""
        if self._closing:
            return
        self._closing = True  # this object is done with the connection
        transport = self._transport
        transport.write(websocket.switching_protocols(key, self._app.name))
        app = self._app

        def closed() -> None:
            app.connections -= 1

        echo = websocket.WebSocketEcho(transport, closed)
        transport.set_protocol(echo)
        early, self._early = b"".join(self._early or ()), None
        if early:
            echo.data_received(early)
        transport.resume_reading()

    def _reject(self, status: int, reason: str) -> None:
        """Answer a request we could not parse (after any earlier ones), then close."""
        self._stop_reading = True
        request = Request("", "", "", "", "1.1", False, self._client, problem=(status, reason))
        self._enqueue(request)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise Refused(431, f"request head is too large (over {MAX_HEAD_BYTES // 1024} KiB)")

    def _head_expects_continue(self) -> bool:
        return self._expect_continue and self._parser.get_http_version() == "1.1"

    def _update_reading(self) -> None:
        want = not self._write_paused and len(self._queue) < MAX_PIPELINE and not self._closing
        if want != self._reading and self._transport is not None and not self._closing:
            self._reading = want
            if want:
                self._transport.resume_reading()
            else:
                self._transport.pause_reading()


def _header_start(data: bytes) -> bool | None:
    """Do these first bytes start a PROXY header (v1 or v2)? None: too few to tell."""
    for prefix in (V1_PREFIX, V2_SIGNATURE):
        if data[: len(prefix)] == prefix:
            return True
        if len(data) < len(prefix) and prefix.startswith(data):
            return None
    return False
