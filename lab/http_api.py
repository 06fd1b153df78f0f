"""One small HTTP/1.1 server core for the lab's JSON APIs: the balancer's admin API and the
traffic generator's control API.

An API is a handler, `handle(request) -> Response`, called at once for each
request; answers leave in the order the requests came. What every API shares
lives here, so each says it the same way:
- status phrases come from `http.HTTPStatus`;
- one error shape, `{"error": "...", "field": "..."}`; `field` names the setting
  or part of the request that was wrong, or is null when it was the request as a whole;
- the same limits: a head over HEAD_LIMIT gets 431, a body over BODY_LIMIT 413;
- JSON bodies are parsed by `parse_json`, which refuses what `json.loads` would let
  through: Infinity, NaN, numbers too large for a float, nesting past MAX_DEPTH;
- Upgrade and CONNECT get 501: these servers never switch protocols;
- any unexpected exception becomes a 500 with a JSON error and a traceback on
  stderr, never a silently dead connection (uvicorn's rule).

The toy backend keeps its own connection class, because its request path is a
benchmark's; it takes the phrases, the error shape, the limits and the JSON
parser from here. The balancer's proxy path keeps its own exchange code, for speed.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import traceback
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import httptools

from lab.errors import FieldError

HEAD_LIMIT = 16 * 1024  # request line plus headers, as the balancer's proxy allows
BODY_LIMIT = 1 << 20  # a whole config with a few hundred backends fits many times over
MAX_DEPTH = 32  # JSON nesting; the deepest real document (a config) needs 4
TOO_DEEP = f"JSON nested deeper than {MAX_DEPTH} levels"
WALK_LIMIT = 64 * 1024  # a body past this that holds Infinity is refused without its path
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
HEAD_TOO_LARGE = f"request head is too large (over {HEAD_LIMIT // 1024} KiB)"
BODY_TOO_LARGE = f"request body is too large (over {BODY_LIMIT >> 20} MiB)"
JSON_TYPE = b"application/json"

# A handler may take the connection over (an event stream): it gets the transport and
# returns what to call when the connection is lost.
Takeover = Callable[[asyncio.Transport], Callable[[], None]]


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def error_body(message: str, field: str | None = None) -> dict[str, Any]:
    """The one error shape of every lab API."""
    return {"error": message, "field": field}


class ApiError(FieldError):
    """A request we refuse with `status`; `allow` lists the methods a 405's path takes."""

    def __init__(
        self, status: int, message: str, field: str | None = None, allow: tuple[str, ...] = ()
    ) -> None:
        super().__init__(field, message)
        self.status = status
        self.allow = allow


class Request:
    """One complete request, as a handler sees it."""

    __slots__ = ("method", "path", "query", "body", "keep_alive", "headers")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        keep_alive: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.keep_alive = keep_alive
        self.headers = headers or {}  # lower-case name -> value (the last one given)


class Response:
    """A status and a body; `document` is sent as JSON, `text` as it is."""

    __slots__ = ("status", "body", "content_type", "allow")

    def __init__(
        self,
        status: int,
        document: Any = None,
        *,
        text: bytes | None = None,
        content_type: bytes = JSON_TYPE,
        allow: tuple[str, ...] = (),
    ) -> None:
        self.status = status
        self.body = json.dumps(document).encode() + b"\n" if text is None else text
        self.content_type = content_type
        self.allow = allow

    @classmethod
    def error(cls, exc: FieldError) -> Response:
        status = exc.status if isinstance(exc, ApiError) else 400
        allow = exc.allow if isinstance(exc, ApiError) else ()
        return cls(status, exc.as_json(), allow=allow)

    def encode(self, close: bool, head_only: bool = False) -> bytes:
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
            self.status,
            phrase(self.status).encode(),
            self.content_type,
            len(self.body),
        )
        if self.allow:
            head += b"Allow: %s\r\n" % ", ".join(self.allow).encode()
        head += b"Connection: close\r\n\r\n" if close else b"Connection: keep-alive\r\n\r\n"
        return head if head_only else head + self.body


Handler = Callable[[Request], "Response | Takeover"]


def parse_json(body: bytes) -> Any:
    """A JSON document, or ApiError 400: field "body" when it is not JSON or nests too deep,
    the number's own path ("timeouts.connect_ms") when a number is not finite."""
    odd: list[float] = []

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            odd.append(value)
        return value

    try:
        # UTF-8 only (RFC 8259), which also keeps _too_deep's byte scan exact.
        document = json.loads(body.decode(), parse_float=number, parse_constant=number)
    except RecursionError:
        raise ApiError(400, TOO_DEEP, "body") from None
    except ValueError as exc:  # UnicodeDecodeError is one too
        raise ApiError(400, f"body is not valid JSON: {exc}", "body") from None
    if _too_deep(body):
        raise ApiError(400, TOO_DEEP, "body")
    if odd:
        where = _first_non_finite(document) if len(body) <= WALK_LIMIT else None
        message = f"expected a finite number, got {odd[0]!r} (too large, or not JSON)"
        raise ApiError(400, f"{where}: {message}" if where else message, where or "body")
    return document


def _too_deep(body: bytes) -> bool:
    """Whether valid JSON nests past MAX_DEPTH, in C-speed passes over the bytes: with the
    strings gone and every bracket made [ or ], each pass removes the innermost level."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    nest = _STRING.sub(b"", body).translate(_SQUARE, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        nest = nest.replace(b"[]", b"")
        if not nest:
            return False
    return True


def _first_non_finite(document: Any) -> str | None:
    """The path of the first Infinity or NaN, in document order: "backends[0].weight"."""
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path or None
        if isinstance(value, dict):
            items = [(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(v, f"{path}[{i}]") for i, v in enumerate(value)]
        else:
            continue
        stack.extend(reversed(items))
    return None


def _too_long(content_length: bytes, limit: int) -> bool:
    text = content_length.strip()
    return text.isascii() and text.isdigit() and (len(text) > 12 or int(text) > limit)


class ApiConnection(asyncio.Protocol):
    """One client of a small JSON API."""

    def __init__(self, handle: Handler, name: str, body_limit: int = BODY_LIMIT) -> None:
        self.handle = handle
        self.name = name  # "admin API": what a log line says crashed
        self.body_limit = body_limit
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.cleanup: Callable[[], None] | None = None  # set once a handler took over
        self.done = False  # nothing more is read: closing, or taken over
        self.unparsed_head = 0  # bytes fed since the last complete head or message
        self.in_body = False
        self._begin()

    def _begin(self) -> None:
        self.url = b""
        self.body = bytearray()
        self.head_size = 0
        self.expect_continue = False
        self.declared_length = b""
        self.upgrade = False
        self.headers: dict[str, str] = {}

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.done = True
        if self.cleanup is not None:
            self.cleanup()

    def pause_writing(self) -> None:
        # A client that sends requests but reads no answers: stop reading its requests.
        if self.transport is not None and self.cleanup is None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.cleanup is None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.unparsed_head += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.done = True  # answered 501 already; what follows is not HTTP/1.1
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ApiError):
                self.send(Response.error(cause), close=True)
            else:  # a bug in a callback of ours
                self.crashed(cause or exc)
        except httptools.HttpParserError as exc:
            self.send(Response(400, error_body(f"malformed request: {exc}")), close=True)
        except Exception as exc:
            self.crashed(exc)
        else:
            if not self.in_body and self.unparsed_head > HEAD_LIMIT:  # a head that never ends
                self.send(Response(431, error_body(HEAD_TOO_LARGE)), close=True)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._begin()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        lower = name.lower()
        self.headers[lower.decode("latin-1")] = value.decode("latin-1")
        if lower == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True
        elif lower == b"content-length":
            self.declared_length = value

    def on_headers_complete(self) -> None:
        self.unparsed_head = 0
        self.in_body = True
        self.upgrade = self.parser.should_upgrade()
        if self.expect_continue and not self.upgrade and self.transport is not None:
            # The client waits for our word, so a body too large is refused before it is sent.
            if _too_long(self.declared_length, self.body_limit):
                raise ApiError(413, BODY_TOO_LARGE, "body")
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self.body += chunk
        if len(self.body) > self.body_limit:
            raise ApiError(413, BODY_TOO_LARGE, "body")

    def on_message_complete(self) -> None:
        self.unparsed_head = 0
        self.in_body = False
        if self.done:
            return
        method = self.parser.get_method().decode("latin-1")
        if self.upgrade:
            what = "tunnel (CONNECT)" if method == "CONNECT" else "switch protocols (Upgrade)"
            self.send(Response(501, error_body(f"this {self.name} does not {what}")), close=True)
            return
        keep_alive = self.parser.should_keep_alive()
        try:
            url = httptools.parse_url(self.url)  # origin-form or absolute-form
        except httptools.HttpParserInvalidURLError:
            self.send(Response(400, error_body("malformed URL")), close=True)
            return
        path, query = (part.decode("latin-1") if part else "" for part in (url.path, url.query))
        request = Request(method, path, query, bytes(self.body), keep_alive, self.headers)
        try:
            answer = self.handle(request)
        except FieldError as exc:
            answer = Response.error(exc)
        except Exception as exc:
            self.crashed(exc)
            return
        if isinstance(answer, Response):
            self.send(answer, close=not keep_alive, head_only=method == "HEAD")
        elif self.transport is not None:
            self.done = True
            self.cleanup = answer(self.transport)

    def _count_head(self, size: int) -> None:
        self.head_size += size
        if self.head_size > HEAD_LIMIT:
            raise ApiError(431, HEAD_TOO_LARGE)

    # -- answering

    def crashed(self, exc: BaseException) -> None:
        """A bug of ours: log it, answer 500, close; the process serves on."""
        print(f"lb-lab {self.name}: internal error", file=sys.stderr, flush=True)
        traceback.print_exception(exc, file=sys.stderr)
        message = f"internal error in the {self.name} (logged): {type(exc).__name__}"
        self.send(Response(500, error_body(message)), close=True)

    def send(self, response: Response, close: bool, head_only: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(response.encode(close, head_only))
        if close:
            self.done = True
            self.transport.close()
