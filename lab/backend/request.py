"""A request as a toy backend's app sees it, and what the app must be to answer one.

HttpConnection (lab.backend.connection) parses the bytes into a `Request`;
the app (lab.backend.app) answers it. A request's body is hashed, never kept,
except for the lab's own /_lab/ API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from lab.backend.responses import CLOSE, KEEP_ALIVE, Framer
from lab.backend.tls import TlsSeen

EMPTY_SHA256 = hashlib.sha256().hexdigest()


@dataclass(slots=True)
class Request:
    """One parsed request, as the app sees it."""

    method: str
    target: str  # as sent: path and query
    path: str
    query: str
    version: str  # "1.1" or "1.0"
    keep_alive: bool
    client: str
    body_length: int = 0
    body_sha256: str = EMPTY_SHA256
    body: bytes | None = None  # only for /_lab/ requests
    forwarded_for: str | None = None
    peer: str = ""  # the TCP peer; differs from `client` when a PROXY header named the client
    proxy_client: str | None = None  # the client a PROXY header named, if one did
    problem: tuple[int, str] | None = None  # (status, reason) when the bytes were not valid HTTP
    websocket_key: bytes | None = None  # a WebSocket handshake to GET /ws (lab.backend.websocket)
    tls: str | None = None  # on the TLS port: the handshake as the echo's JSON (lab.backend.tls)

    @property
    def connection_header(self) -> bytes:
        if not self.keep_alive:
            return CLOSE
        return KEEP_ALIVE if self.version == "1.0" else b""


class App(Protocol):
    name: str
    framer: Framer
    connections: int
    tls: TlsSeen

    def answer(self, request: Request) -> bytes | Awaitable[bytes]: ...
