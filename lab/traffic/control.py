"""The traffic generator's control API: JSON over HTTP/1.1, so the web lab can steer it.

    GET  /state    200 {"target", "rate", "clients", "keep_alive", "paused",
                        "counters": {"sent", "completed", "failed", "in_flight",
                                     "status": {"2xx", "4xx", "5xx"}, "failures": {...}},
                        "latency_ms": {"p50", "p95"}, "client_list": [...]}
    PUT  /config   partial {"rate", "clients", "keep_alive", "paused", "protocol", "udp_session",
                   "tls", "sni_mix", "resumption"} (HTTPS: lab.traffic.tls), validated whole
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

from typing import TYPE_CHECKING, Any

from lab.http_api import ApiConnection, ApiError, Request, Response, parse_json
from lab.traffic.settings import SettingError, send_count

if TYPE_CHECKING:
    from lab.traffic.generator import TrafficGenerator

ALLOWED = {
    "/": ("GET",),
    "/state": ("GET",),
    "/config": ("PUT",),
    "/send": ("POST",),
    "/reset": ("POST",),
}


def answer(generator: TrafficGenerator, method: str, path: str, body: bytes) -> tuple[int, dict]:
    """Answer one control request: (status, JSON document)."""
    allowed = ALLOWED.get(path)
    if allowed is None:
        raise ApiError(404, f"no control path {path}; try GET /state")
    if method not in allowed and not (method == "HEAD" and "GET" in allowed):
        raise ApiError(405, f"{path} takes {allowed[0]}, not {method}", allow=allowed)
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


def requested_count(document: Any) -> int:
    if not isinstance(document, dict) or "count" not in document:
        raise SettingError("count", 'expected {"count": N} with N 1-1000')
    unknown = sorted(set(document) - {"count"})
    if unknown:
        raise SettingError(unknown[0], f"unknown field {unknown[0]!r}; /send takes only count")
    return send_count("count", document["count"])


class ControlConnection(ApiConnection):
    """One client of the control API; requests are answered in order, each at once."""

    def __init__(self, generator: TrafficGenerator) -> None:
        super().__init__(self.respond, "traffic generator's control API")
        self.generator = generator

    def respond(self, request: Request) -> Response:
        return Response(*answer(self.generator, request.method, request.path, request.body))
