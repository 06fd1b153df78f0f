"""The traffic generator's control API: JSON over HTTP/1.1, so the web lab can steer it.

    GET  /state    200 {"target", "rate", "clients", "keep_alive", "paused",
                        "counters": {"sent", "completed", "failed", "in_flight",
                                     "status": {"2xx", "4xx", "5xx"}, "failures": {...}},
                        "latency_ms": {"p50", "p95"}, "client_list": [...]}
    PUT  /config   partial {"rate", "clients", "keep_alive", "paused"}, validated whole
                   before anything changes: 200 {"ok", "changes", "state"}, or
                   400 {"error": "...", "field": "..."} and nothing changed
    POST /send     {"count": N} with N 1-1000: a burst now, paused or not;
                   200 {"ok": true, "queued": N} at once, without waiting for answers
    POST /reset    zero the counters (in_flight is a gauge and stays), empty every client's
                   cookie jar and send the next request from c1; 200 {"ok": true}

Unknown path 404, wrong method 405, malformed JSON 400 with "field": "body".
Bad input never takes the process down.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from typing import TYPE_CHECKING, Any

import httptools

from lab.traffic.settings import SettingError, send_count

if TYPE_CHECKING:
    from lab.traffic.generator import TrafficGenerator

HEAD_LIMIT = 16 * 1024
BODY_LIMIT = 64 * 1024
ALLOWED = {
    "/": ("GET",),
    "/state": ("GET",),
    "/config": ("PUT",),
    "/send": ("POST",),
    "/reset": ("POST",),
}
STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class ControlError(Exception):
    def __init__(
        self, status: int, message: str, field: str | None = None, allow: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, "field": field}
        self.allow = allow


def answer(generator: TrafficGenerator, method: str, path: str, body: bytes) -> tuple[int, dict]:
    """Answer one control request: (status, JSON document)."""
    allowed = ALLOWED.get(path)
    if allowed is None:
        raise ControlError(404, f"no control path {path}; try GET /state")
    if method not in allowed and not (method == "HEAD" and "GET" in allowed):
        raise ControlError(405, f"{path} takes {allowed[0]}, not {method}", allow=allowed)
    if path == "/state":
        return 200, generator.state()
    if path == "/config":
        changes = generator.update(parse_json(body))
        return 200, {"ok": True, "changes": changes, "state": generator.state()}
    if path == "/send":
        count = requested_count(parse_json(body))
        generator.send(count)
        return 200, {"ok": True, "queued": count}
    if path == "/reset":
        generator.reset()
        return 200, {"ok": True}
    return 200, {"endpoints": [f"{methods[0]} {path}" for path, methods in ALLOWED.items()]}


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(400, f"body is not valid JSON: {exc}", "body") from None


def requested_count(document: Any) -> int:
    if not isinstance(document, dict) or "count" not in document:
        raise SettingError("count", 'expected {"count": N} with N 1-1000')
    unknown = sorted(set(document) - {"count"})
    if unknown:
        raise SettingError(unknown[0], f"unknown field {unknown[0]!r}; /send takes only count")
    return send_count("count", document["count"])


class ControlConnection(asyncio.Protocol):
    """One client of the control API; requests are answered in order, each at once."""

    def __init__(self, generator: TrafficGenerator) -> None:
        self.generator = generator
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._begin()

    def _begin(self) -> None:
        self.url = b""
        self.body = bytearray()
        self.head_size = 0
        self.expect_continue = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Answered already, without switching protocols; what follows is not ours to read.
            self.transport.close()
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, ControlError):
                self.send(cause.status, cause.body, close=True)
            else:
                self.send(400, {"error": f"malformed request: {exc}", "field": None}, close=True)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._begin()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        if name.lower() == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True

    def on_headers_complete(self) -> None:
        if self.expect_continue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self.body += chunk
        if len(self.body) > BODY_LIMIT:
            raise ControlError(413, f"request body is over {BODY_LIMIT // 1024} KiB", "body")

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode("latin-1")
        keep_alive = self.parser.should_keep_alive()
        allow: tuple[str, ...] = ()
        try:
            path = httptools.parse_url(self.url).path.decode("latin-1")
            status, document = answer(self.generator, method, path, bytes(self.body))
        except httptools.HttpParserInvalidURLError:
            status, document = 400, {"error": "malformed URL", "field": None}
        except ControlError as exc:
            status, document, allow = exc.status, exc.body, exc.allow
        except SettingError as exc:
            status, document = 400, exc.as_json()
        except Exception:  # a bug of ours: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            status, document = 500, {"error": "internal error in the traffic generator"}
        self.send(status, document, not keep_alive, head_only=method == "HEAD", allow=allow)

    def _count_head(self, size: int) -> None:
        self.head_size += size
        if self.head_size > HEAD_LIMIT:
            raise ControlError(431, f"request head is over {HEAD_LIMIT // 1024} KiB")

    # -- answering

    def send(
        self,
        status: int,
        document: dict,
        close: bool,
        head_only: bool = False,
        allow: tuple[str, ...] = (),
    ) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        body = json.dumps(document).encode() + b"\n"
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
            status,
            STATUS_TEXT[status].encode(),
            len(body),
        )
        if allow:
            head += b"Allow: %s\r\n" % ", ".join(allow).encode()
        head += b"Connection: close\r\n\r\n" if close else b"\r\n"
        self.transport.write(head if head_only else head + body)
        if close:
            self.transport.close()
