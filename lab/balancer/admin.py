"""The admin API: JSON over HTTP on its own loopback port, like Envoy's admin or HAProxy's.

GET  /state              the whole picture: mode, algorithm, build, every backend's numbers
PUT  /config             partial update, validated whole first; 400 {"error", "field"}
                         (?fresh=1: every backend and pool built anew, as at start)
GET  /events             newline-delimited JSON events until the client leaves
GET  /metrics            Prometheus text format
POST /backends           add one backend: {"name", "address", "weight"}
PUT  /backends/NAME      change one backend: weight, address, backup, max_conns, draining
DELETE /backends/NAME    remove one backend (in-flight requests finish)
POST /reset              zero the counters (totals, failures, histograms)
"""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from collections.abc import Callable

from lab.balancer import events, metrics
from lab.balancer.balancer import Balancer
from lab.balancer.snapshot import snapshot
from lab.http_api import ApiConnection, ApiError, Request, Response, parse_json

BACKEND_CHANGES = frozenset({"weight", "address", "backup", "max_conns", "draining"})
ALLOWED = {
    "/": ("GET",),
    "/state": ("GET",),
    "/metrics": ("GET",),
    "/config": ("PUT",),
    "/reset": ("POST",),
    "/backends": ("POST",),
    "/events": ("GET",),
}
EVENTS_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
    b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
)
METRICS_TYPE = b"text/plain; version=0.0.4"


class AdminConnection(ApiConnection):
    """One client of the admin API; each request is answered at once, in order."""

    def __init__(self, balancer: Balancer) -> None:
        super().__init__(self.answer, "admin API")
        self.balancer = balancer

    def answer(self, request: Request) -> Response | Callable:
        balancer, path, method = self.balancer, request.path, request.method
        if path == "/events" and method == "GET":
            return self.start_event_stream
        if path == "/state" and method == "GET":
            return Response(200, snapshot(balancer))
        if path == "/metrics" and method == "GET":
            return Response(200, text=metrics.render(balancer).encode(), content_type=METRICS_TYPE)
        if path == "/config" and method == "PUT":
            fresh = fresh_asked(request.query)
            changes = balancer.update(parse_json(request.body or b"null"), fresh)
            return Response(200, {"ok": True, "changes": changes, "state": snapshot(balancer)})
        if path == "/reset" and method == "POST":
            balancer.reset_counters()
            return Response(200, {"ok": True})
        if path == "/backends" and method == "POST":
            spec = parse_json(request.body or b"null")
            backends = [b.as_json() for b in balancer.config.backends] + [spec]
            return Response(200, {"ok": True, "changes": balancer.update({"backends": backends})})
        if path.startswith("/backends/") and method in ("PUT", "DELETE"):
            changes = self.change_backend(method, path[10:], request.body)
            return Response(200, {"ok": True, "changes": changes})
        if path == "/" and method == "GET":
            lines = __doc__.strip().splitlines()[2:]
            return Response(200, {"endpoints": [line.strip() for line in lines]})
        if path in ALLOWED or path.startswith("/backends/"):
            allow = ALLOWED.get(path, ("PUT", "DELETE"))
            raise ApiError(405, f"{method} is not allowed on {path}", allow=allow)
        raise ApiError(404, f"no admin endpoint {path}; try GET /state")

    def change_backend(self, method: str, name: str, body: bytes) -> dict:
        backends = [b.as_json() for b in self.balancer.config.backends]
        match = [b for b in backends if b["name"] == name]
        if not match:
            raise ApiError(404, f"no backend named {name!r}", "name")
        if method == "DELETE":
            backends.remove(match[0])
            return self.balancer.update({"backends": backends})
        patch = parse_json(body or b"null")
        if not isinstance(patch, dict) or not patch or not set(patch) <= BACKEND_CHANGES:
            raise ApiError(
                400,
                "expected an object with some of: " + ", ".join(sorted(BACKEND_CHANGES)),
                "backend",
            )
        draining = patch.pop("draining", None)
        if draining is not None and not isinstance(draining, bool):
            raise ApiError(400, f"draining: expected true or false, got {draining!r}", "draining")
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

    def start_event_stream(self, transport: asyncio.Transport) -> Callable[[], None]:
        """Stream events on this connection until the client leaves; nothing more is read."""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, events.SOCKET_SEND_BUFFER)
        transport.write(EVENTS_HEAD)
        hub = self.balancer.events
        subscriber = hub.subscribe(transport)
        return lambda: hub.unsubscribe(subscriber)


def fresh_asked(query: str) -> bool:
    """`PUT /config?fresh=1`: build every backend and pool anew (Balancer.update)."""
    asked = urllib.parse.parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(asked) - {"fresh"})
    if unknown:
        raise ApiError(
            400, f"unknown parameter {unknown[0]!r}; PUT /config takes ?fresh=1", "query"
        )
    values = asked.get("fresh", ["0"])
    if len(values) != 1 or values[0] not in ("0", "1", "true", "false"):
        raise ApiError(400, f"fresh must be 1 or 0, got {values!r}", "fresh")
    return values[0] in ("1", "true")
