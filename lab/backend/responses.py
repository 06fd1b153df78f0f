"""HTTP/1.1 response bytes for one backend, with the fixed header lines built once.

Everything here is pure: a status, a body and a few flags in, bytes out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from email.utils import formatdate
from json.encoder import encode_basestring_ascii as quote  # the C one: a quoted JSON string
from typing import Any

from lab.http_api import phrase

# Every status a toy backend sends; each line is built once, with http.HTTPStatus's phrase.
STATUSES = (200, 400, 404, 405, 413, 414, 431, 500, 501, 503)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
JSON = b"Content-Type: application/json\r\n"
TEXT = b"Content-Type: text/plain; charset=utf-8\r\n"
KEEP_ALIVE = b"Connection: keep-alive\r\n"  # only HTTP/1.0 clients need to be told
CLOSE = b"Connection: close\r\n"

# /bytes and /chunked repeat this, so a test can check a body byte by byte:
# byte i of a body is PATTERN[i % 64], across chunk boundaries too.
PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n"


def pattern_bytes(size: int, start: int = 0) -> bytes:
    """`size` bytes of the repeating PATTERN, beginning at stream offset `start`."""
    offset = start % len(PATTERN)
    repeats = (offset + size) // len(PATTERN) + 1
    return (PATTERN * repeats)[offset : offset + size]


def json_body(document: Any) -> bytes:
    """Compact JSON with a trailing newline, so `curl` leaves the prompt on its own line."""
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def echo_body(
    backend: str,
    method: str,
    path: str,
    client: str,
    served: int,
    bytes_received: int,
    sha256: str,
    forwarded_for: str | None = None,
    peer: str | None = None,
    tls: str | None = None,
) -> bytes:
    """The echo's JSON, formatted by hand: json.dumps would be a third of a request's cost."""
    text = (
        f'{{"backend":"{backend}","method":{quote(method)},"path":{quote(path)},'
        f'"client":{quote(client)},"served":{served},"bytes_received":{bytes_received},'
        f'"sha256":"{sha256}"'
    )
    if forwarded_for is not None:
        text += ',"forwarded_for":' + quote(forwarded_for)
    if peer is not None:  # a PROXY header named `client`; the socket's own peer was this
        text += ',"peer":' + quote(peer)
    if tls is not None:  # the TLS port: the handshake, already JSON (lab.backend.tls)
        text += ',"tls":' + tls
    return (text + "}\n").encode()


class Framer:
    """Frames response bytes for the backend called `name`."""

    def __init__(self, name: str, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._fixed = b"Server: lb-lab-backend\r\nX-Backend: " + name.encode() + b"\r\n"
        self._status = {code: f"HTTP/1.1 {code} {phrase(code)}\r\n".encode() for code in STATUSES}
        self._second = -1
        self._date = b""

    def full(
        self,
        status: int,
        body: bytes,
        *,
        content_type: bytes = JSON,
        connection: bytes = b"",
        head_only: bool = False,
        extra: bytes = b"",
    ) -> bytes:
        """A response with Content-Length; `head_only` leaves the body out (for HEAD)."""
        return b"".join(
            (
                self._status[status],
                self._date_line(),
                self._fixed,
                content_type,
                b"Content-Length: %d\r\n" % len(body),
                extra,
                connection,
                b"\r\n",
                b"" if head_only else body,
            )
        )

    def chunked(
        self,
        status: int,
        chunks: list[bytes],
        *,
        content_type: bytes = TEXT,
        connection: bytes = b"",
        head_only: bool = False,
    ) -> bytes:
        """A Transfer-Encoding: chunked response carrying `chunks` in order (none may be empty)."""
        parts = [
            self._status[status],
            self._date_line(),
            self._fixed,
            content_type,
            b"Transfer-Encoding: chunked\r\n",
            connection,
            b"\r\n",
        ]
        if head_only:
            return b"".join(parts)
        for chunk in chunks:
            parts += (b"%x\r\n" % len(chunk), chunk, b"\r\n")
        parts.append(b"0\r\n\r\n")
        return b"".join(parts)

    def _date_line(self) -> bytes:
        # The Date header changes once a second; format it once a second, not per request.
        now = int(self._clock())
        if now != self._second:
            self._second = now
            self._date = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._date
