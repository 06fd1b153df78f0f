"""The admin API: JSON over HTTP on its own loopback port, like Envoy's admin or HAProxy's.

GET  /state              the whole picture: mode, algorithm, build, every backend's numbers
PUT  /config             partial update, validated whole first; 400 {"error", "field"}
GET  /events             newline-delimited JSON events until the client leaves
GET  /metrics            Prometheus text format
POST /backends           add one backend: {"name", "address", "weight"}
PUT  /backends/NAME      change one backend: weight, address, backup, max_conns, draining
DELETE /backends/NAME    remove one backend (in-flight requests finish)
POST /reset              zero the counters (totals, failures, histograms)
"""

from __future__ import annotations

import asyncio
import json
import socket

import httptools

from lab.balancer import events, metrics
from lab.balancer.balancer import Balancer
from lab.balancer.config import ConfigError

BODY_LIMIT = 1 << 20
BACKEND_CHANGES = frozenset({"weight", "address", "backup", "max_conns", "draining"})
HEAD_LIMIT = 16 * 1024
HEAD_TOO_LARGE = f"request head is too large (over {HEAD_LIMIT // 1024} KiB)"
STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
}


class AdminError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message} | ({"field": field} if field else {})


class AdminConnection(asyncio.Protocol):
    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue = asyncio.Queue()
        self.subscriber: events.Subscriber | None = None
        self.task: asyncio.Task | None = None
        self._reset_request()

    def _reset_request(self) -> None:
        self.url = b""
        self.body = bytearray()
        self.head_size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.task = asyncio.get_running_loop().create_task(self.serve())

    def data_received(self, data: bytes) -> None:
        if self.subscriber is not None:
            return  # an /events reader has nothing more to say
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, AdminError):
                self.send_json(cause.status, cause.body, close=True)
            else:
                self.send_json(400, {"error": f"malformed request: {exc}"}, close=True)
        else:
            if self.head_size + len(self.url) > HEAD_LIMIT:  # a head that never ends
                self.send_json(431, {"error": HEAD_TOO_LARGE}, close=True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.subscriber is not None:
            self.balancer.events.unsubscribe(self.subscriber)
        if self.task is not None:
            self.task.cancel()

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > HEAD_LIMIT:
            raise AdminError(431, HEAD_TOO_LARGE)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size + len(self.url) > HEAD_LIMIT:
            raise AdminError(431, HEAD_TOO_LARGE)

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > BODY_LIMIT:
            raise AdminError(413, f"request body is too large (over {BODY_LIMIT >> 20} MiB)")

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        path = httptools.parse_url(self.url).path.decode()
        self.queue.put_nowait((method, path, bytes(self.body), self.parser.should_keep_alive()))
        self._reset_request()

    async def serve(self) -> None:
        """Answer requests in order; one at a time keeps config changes simple to reason about."""
        while True:
            method, path, body, keep_alive = await self.queue.get()
            if path == "/events" and method == "GET":
                self.start_event_stream()
                return
            try:
                status, payload = await self.handle(method, path, body)
            except AdminError as exc:
                status, payload = exc.status, exc.body
            except ConfigError as exc:
                status, payload = 400, exc.as_json()
            if isinstance(payload, str):
                self.send(status, payload.encode(), b"text/plain; version=0.0.4", not keep_alive)
            else:
                self.send_json(status, payload, close=not keep_alive)

    async def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict | str]:
        balancer = self.balancer
        if path == "/state" and method == "GET":
            return 200, balancer.state()
        if path == "/metrics" and method == "GET":
            return 200, metrics.render(balancer)
        if path == "/config" and method == "PUT":
            changes = balancer.update(parse_json(body))
            return 200, {"ok": True, "changes": changes, "state": balancer.state()}
        if path == "/reset" and method == "POST":
            balancer.reset_counters()
            return 200, {"ok": True}
        if path == "/backends" and method == "POST":
            spec = parse_json(body)
            backends = [b.as_json() for b in balancer.config.backends] + [spec]
            return 200, {"ok": True, "changes": balancer.update({"backends": backends})}
        if path.startswith("/backends/") and method in ("PUT", "DELETE"):
            return 200, {"ok": True, "changes": self.change_backend(method, path[10:], body)}
        if path == "/" and method == "GET":
            return 200, {"endpoints": [line.strip() for line in __doc__.strip().splitlines()[2:]]}
        if path in ("/", "/state", "/metrics", "/config", "/reset", "/backends", "/events"):
            raise AdminError(405, f"{method} is not allowed on {path}")
        raise AdminError(404, f"no admin endpoint {path}; try GET /state")

    def change_backend(self, method: str, name: str, body: bytes) -> dict:
        backends = [b.as_json() for b in self.balancer.config.backends]
        match = [b for b in backends if b["name"] == name]
        if not match:
            raise AdminError(404, f"no backend named {name!r}", field="name")
        if method == "DELETE":
            backends.remove(match[0])
            return self.balancer.update({"backends": backends})
        patch = parse_json(body)
        if not isinstance(patch, dict) or not patch or not set(patch) <= BACKEND_CHANGES:
            raise AdminError(
                400,
                "expected an object with some of: " + ", ".join(sorted(BACKEND_CHANGES)),
                "backend",
            )
        draining = patch.pop("draining", None)
        if draining is not None and not isinstance(draining, bool):
            raise AdminError(400, f"draining: expected true or false, got {draining!r}", "draining")
        changes = {}
        if patch:
            match[0].update(patch)
            changes = self.balancer.update({"backends": backends})  # validated whole first
        if draining is not None:
            backend = self.balancer.backends[name]
            if backend.draining != draining:
                self.balancer.set_draining(backend, draining)
                changes["draining"] = {name: draining}
        return changes

    def start_event_stream(self) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
        )
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, events.SOCKET_SEND_BUFFER)
        self.transport.write(head)
        self.subscriber = self.balancer.events.subscribe(self.transport)

    def send_json(self, status: int, payload: dict, close: bool = False) -> None:
        self.send(status, json.dumps(payload).encode() + b"\n", b"application/json", close)

    def send(self, status: int, body: bytes, content_type: bytes, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        head = (
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n"
            % (
                status,
                STATUS_TEXT.get(status, "").encode(),
                content_type,
                len(body),
                b"close" if close else b"keep-alive",
            )
        )
        self.transport.write(head + body)
        if close:
            self.transport.close()


def parse_json(body: bytes) -> object:
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise AdminError(400, f"body is not valid JSON: {exc}", field="body") from None
