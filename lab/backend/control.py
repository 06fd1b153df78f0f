"""The backend's control API under /_lab/: read its state, turn its knobs, reset its counters.

    GET  /_lab/state   200 {"backend", "pid", "listen", "knobs": {...}, "counters": {...},
                       "clients": {...}, "tls": {...} or null} (clients: who served requests
                       came from, clients.py; tls: the TLS listener's handshakes, tls.py)
    PUT  /_lab/knobs   JSON object, a partial update of latency_ms, jitter_ms,
                       error_rate, max_concurrency, healthy. Validated whole
                       before anything changes: 200 with the new state, or
                       400 {"error": "...", "field": "..."} and nothing changed
    POST /_lab/reset   zero the counters (served, errors, health_checks) and the clients;
                       200 with the state

Control requests are answered at once: no latency, no simulated errors, no
concurrency limit, and they are not counted in `served`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.backend.knobs import KnobError
from lab.http_api import ApiError, parse_json

if TYPE_CHECKING:
    from lab.backend.app import ToyBackend
    from lab.backend.request import Request

ALLOWED = {"/_lab/state": ("GET", "HEAD"), "/_lab/knobs": ("PUT",), "/_lab/reset": ("POST",)}


def answer(backend: ToyBackend, request: Request) -> bytes:
    """Answer one /_lab/ request."""
    allowed = ALLOWED.get(request.path)
    if allowed is None:
        paths = ", ".join(f"{methods[0]} {path}" for path, methods in ALLOWED.items())
        return backend.reply(
            request, 404, {"error": f"no such control path; try {paths}", "field": None}
        )
    if request.method not in allowed:
        allow = b"Allow: " + ", ".join(allowed).encode() + b"\r\n"
        error = {"error": f"{request.path} takes {' or '.join(allowed)}", "field": None}
        return backend.reply(request, 405, error, extra=allow)
    if request.path == "/_lab/knobs":
        try:
            change_knobs(backend, request.body)
        except KnobError as exc:
            return backend.reply(request, 400, exc.as_json())
    elif request.path == "/_lab/reset":
        backend.reset()
    return backend.reply(request, 200, state(backend))


def state(backend: ToyBackend) -> dict[str, Any]:
    return {
        "backend": backend.name,
        "pid": backend.pid,
        "listen": backend.listen,
        "knobs": backend.knobs.as_json(),
        "counters": backend.counters(),
        "clients": backend.clients.as_json(),
        # The TLS listener and its handshakes (lab.backend.tls); null without --tls-port.
        "tls": backend.tls.as_json() if backend.tls.listen else None,
    }


def change_knobs(backend: ToyBackend, body: bytes | None) -> None:
    """Apply a JSON partial update to the knobs, all of it or none of it."""
    if not body:
        raise KnobError(None, 'send a JSON object of knobs, e.g. {"latency_ms": 50}')
    try:
        changes = parse_json(body)  # no Infinity, NaN or deep nesting either
    except ApiError as exc:
        raise KnobError(exc.field, exc.message) from None
    before = backend.knobs
    after = before.updated(changes)
    backend.set_knobs(after)
    said = ", ".join(f"{k} {getattr(before, k)} -> {getattr(after, k)}" for k in changes)
    print(f"backend {backend.name} knobs: {said}", flush=True)
