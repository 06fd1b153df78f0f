"""The balancer's event kinds: each declared once, with its fields and what they mean.

The balancer publishes these on GET /events (NDJSON), the lab relays them to
the page in `batch`es, and the lessons measure them. Producers take the kind
names from here; the per-request kinds (route, done) are written as text on
the hot path, and a test checks every line against these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.vocabulary.types import (
    Schema,
    anything,
    constant,
    flag,
    maybe,
    number,
    record,
    text,
    whole,
)

ROUTE = "route"
DONE = "done"
ERROR = "error"
CONFIG = "config"
HEALTH = "health"
CHECK = "check"
DRAIN = "drain"
QUEUE = "queue"
DROPPED = "dropped"
DATAGRAM = "datagram"

BACKEND_STATES = ("up", "warming", "down", "draining", "drained")
MODES = ("http", "tcp", "udp")
# How a UDP flow ended (lab.balancer.flows.ENDS).
FLOW_ENDS = ("idle", "evicted", "backend-down", "refused", "answered", "reset")


@dataclass(frozen=True)
class EventKind:
    name: str
    meaning: str
    fields: dict[str, Schema]
    optional: tuple[str, ...] = ()

    def schema(self) -> Schema:
        fields = {"type": constant(self.name, "the event's kind")} | self.fields
        return record(self.meaning, fields, self.optional)


def _t() -> Schema:
    return number("when it happened: the balancer's wall clock, in seconds since 1970")


def _id() -> Schema:
    return text("the request's id (r1, r2, ...); at Layer 4, the connection's or UDP flow's")


def _backend(what: str = "the backend") -> Schema:
    return text(what)


def _reason(what: str) -> Schema:
    return text(what + ", written for a learner, with the numbers that decided it")


KINDS: tuple[EventKind, ...] = (
    EventKind(
        ROUTE,
        "a routing decision: this request (or, at Layer 4, connection or UDP flow; per "
        "datagram with udp.per_datagram) goes to this backend",
        {
            "id": _id(),
            "t": _t(),
            "mode": text("the layer the decision was made at", MODES),
            "client": text("the client's address (mode udp: address:port, the flow's key)"),
            "backend": _backend("the backend chosen"),
            "algorithm": text("the algorithm that chose (the pool's)"),
            "reason": _reason("why this backend"),
            "method": text("the request's method (Layer 7 only)"),
            "path": text("the request's path (Layer 7 only)"),
            "retry": whole("how many backends failed this request before this one", 1),
            "pool": text("the pool chosen from, when it is not the default pool"),
            "rule": text("the routing rule that named the pool"),
            "sticky": constant(True, "a sticky cookie or the stick table chose the backend"),
            "upgrade": text(
                "the protocol a handshake asks for (Layer 7 only): if the backend answers "
                "101, the connection becomes a tunnel, drawn and counted until its done",
                ("websocket",),
            ),
            "tls": record(
                "HTTPS: what the balancer learned of the client's TLS",
                {
                    "sni": maybe(text("the server name the ClientHello asked for (SNI)")),
                    "version": maybe(
                        text("the TLS version: negotiated if terminated, else the highest offered")
                    ),
                    "terminated": flag(
                        "true: the balancer decrypted (Layer 7); false: it passed the "
                        "encrypted bytes through and saw only the ClientHello (Layer 4)"
                    ),
                    "resumed": flag("the session was resumed, not a full handshake"),
                },
                ("resumed",),
            ),
        },
        optional=("method", "path", "retry", "pool", "rule", "sticky", "upgrade", "tls"),
    ),
    EventKind(
        DONE,
        "a request (or Layer 4 connection, UDP flow or WebSocket tunnel) finished on its backend",
        {
            "id": _id(),
            "t": _t(),
            "backend": _backend("the backend that served it"),
            "status": maybe(
                whole("the status the client got; 499: the client left first; null at Layer 4")
            ),
            "ms": number("milliseconds from routing to the end of the answer", 0),
            "bytes": whole("bytes sent to the client", 0),
            "bytes_up": whole("bytes received from the client", 0),
            "reason": _reason(
                "why a tunnel (status 101) ended: a side closed it, or it was idle too long"
            ),
            "datagrams": whole("mode udp: datagrams sent back to the client", 0),
            "datagrams_up": whole("mode udp: datagrams received from the client", 0),
            "end": text(
                "mode udp: why the flow ended: idle (no datagram for udp.idle_timeout_ms), "
                "evicted (the table was full at udp.max_flows), backend-down (its backend "
                "left service), refused (ICMP port unreachable), answered (per datagram: the "
                "reply came), reset (a fresh start)",
                FLOW_ENDS,
            ),
        },
        optional=("reason", "datagrams", "datagrams_up", "end"),
    ),
    EventKind(
        ERROR,
        "something went wrong with a request: the balancer answered it itself, "
        "retried it, or the answer was cut off",
        {
            "id": _id(),
            "t": _t(),
            "status": maybe(whole("the status the balancer answered with, if it answered")),
            "reason": _reason("what went wrong"),
            "backend": _backend("the backend involved, if any"),
        },
        optional=("backend",),
    ),
    EventKind(
        CONFIG,
        "the balancer's settings changed (PUT /config, or a backend added, removed or changed)",
        {"t": _t(), "changes": anything("the settings that changed, by name, with new values")},
    ),
    EventKind(
        HEALTH,
        "a backend went in or out of service",
        {
            "t": _t(),
            "backend": _backend(),
            "healthy": flag("whether it takes traffic now"),
            "source": text(
                "who decided: active checks (probes) or passive health (real traffic)",
                ("active", "passive"),
            ),
            "reason": _reason("why"),
        },
    ),
    EventKind(
        CHECK,
        "one active health check: a real probe of one backend",
        {
            "t": _t(),
            "backend": _backend(),
            "ok": flag("whether the probe passed"),
            "ms": number("how long the probe took, in milliseconds", 0),
            "detail": text("what happened: the answer's status, refused, timed out, ..."),
        },
    ),
    EventKind(
        DRAIN,
        "a backend began draining, finished (drained), or takes new requests again",
        {
            "t": _t(),
            "backend": _backend(),
            "state": text("the backend's state now", BACKEND_STATES),
            "active": whole("requests (or connections) still in flight on it", 0),
            "reason": _reason("what happened"),
        },
    ),
    EventKind(
        QUEUE,
        "a request waits: every backend of its pool is at max_conns",
        {
            "id": _id(),
            "t": _t(),
            "pool": text("the pool whose queue it joined"),
            "position": whole("its place in the queue, 1 = next", 1),
            "reason": _reason("why it waits"),
        },
    ),
    EventKind(
        DATAGRAM,
        "mode udp: one datagram through a flow, from its client (up) or back from its "
        "backend (down)",
        {
            "id": _id(),
            "t": _t(),
            "client": text("the flow's client, address:port"),
            "backend": _backend("the flow's backend"),
            "way": text("up: client to backend; down: the backend's reply", ("up", "down")),
            "bytes": whole("the datagram's size", 0),
            "ms": number("a reply's round trip: from the datagram it answers, ms", 0),
        },
        optional=("ms",),
    ),
    EventKind(
        DROPPED,
        "this reader fell behind, and this many events were left out for it "
        "(traffic never waits for a reader)",
        {"count": whole("events left out since the last report", 1)},
    ),
)

BY_NAME: dict[str, EventKind] = {kind.name: kind for kind in KINDS}
