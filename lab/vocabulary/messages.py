"""The messages the lab sends the page: `state` (the whole picture) and `batch` (what
happened since the last one, about every 50 ms), and the answer to every command.
"""

from __future__ import annotations

from lab.vocabulary.events import BACKEND_STATES, MODES
from lab.vocabulary.types import (
    Schema,
    anything,
    flag,
    listing,
    mapping,
    maybe,
    number,
    record,
    text,
    whole,
)

CARD_STATES = (*BACKEND_STATES, "killed")


def latency_point() -> Schema:
    return record(
        "the response times the balancer reported in one wall-clock second",
        {
            "t": whole("the second (Unix time)"),
            "n": whole("responses in that second", 0),
            "p50": maybe(number("median response time, ms; null when n is 0")),
            "p95": maybe(number("95th percentile response time, ms; null when n is 0")),
        },
    )


def backend_counters() -> Schema:
    return record(
        "one backend's live numbers, as the balancer counts them",
        {
            "active": whole("requests (Layer 4: connections) in flight", 0),
            "total": whole("routed here since the start or the last reset", 0),
            "failures": whole("refused, reset, timed out or 5xx, on real traffic", 0),
            "ewma_ms": number("peak EWMA of its response time, ms (least-response-time)", 0),
            "healthy": flag("whether the balancer gives it traffic"),
            "state": text("the balancer's view of it", BACKEND_STATES),
            "reason": text("why it is not up, for the card; empty when up"),
            "datagrams": whole("mode udp: datagrams from clients forwarded to it", 0),
        },
    )


def udp_counters() -> Schema:
    return record(
        "the balancer's UDP flow table (mode udp)",
        {
            "flows": whole("flows live now", 0),
            "flows_started": whole("flows opened since the balancer started", 0),
            "evicted": whole("flows pushed out because the table was full (udp.max_flows)", 0),
            "expired": whole("flows that ended idle (udp.idle_timeout_ms)", 0),
            "datagrams_up": whole("datagrams from clients forwarded to backends", 0),
            "datagrams_down": whole("replies from backends sent back to clients", 0),
        },
    )


SIDES = ("left", "right")


def distribution() -> Schema:
    return record(
        "every response time this side's clients saw since the comparison opened (or the last "
        "reset), to 1%: the comparison's numbers",
        {
            "n": whole("answers counted", 0),
            "p50": maybe(number("median, ms; null before any answer")),
            "p95": maybe(number("95th percentile, ms")),
            "p99": maybe(number("99th percentile, ms")),
            "max": maybe(number("the slowest answer, ms (exact)")),
            "cdf": listing(
                number("ms", 0),
                "the response time at 1%, 2%, ... 99%, 99.5% and 99.9% of the answers "
                "(empty before any): the distribution to draw",
            ),
        },
    )


def traffic_counters() -> Schema:
    percentiles = record(
        "the traffic generator's response times, ms",
        {"p50": maybe(number("median")), "p95": maybe(number("95th percentile"))},
    )
    return maybe(
        record(
            "what the traffic generator's clients saw (null: it is not running)",
            {
                "sent": whole("requests sent", 0),
                "completed": whole("answers received", 0),
                "failed": whole("requests that got no answer", 0),
                "in_flight": whole("requests waiting for an answer now", 0),
                "status": mapping(whole("answers", 0), "answers by class: 2xx, 4xx, 5xx"),
                "latency_ms": percentiles,
                "distribution": distribution(),
            },
            optional=("distribution",),  # during a comparison
        )
    )


def counters() -> Schema:
    return record(
        "exact counters, read from the balancer and the traffic generator when sent",
        {
            "total": whole("routed, summed over the backends", 0),
            "active": whole("in flight, summed over the backends", 0),
            "failures": whole("failures, summed over the backends", 0),
            "errors": mapping(
                whole("how many", 0),
                "the balancer's errors by kind: the status it answered, or retry, refused, ...",
            ),
            "backends": mapping(backend_counters(), "each backend's numbers, by name"),
            "traffic": traffic_counters(),
            "udp": udp_counters(),
            "read": whole("the reading's number: counters read later have a larger one", 0),
            "queued": mapping(
                whole("requests waiting", 0),
                "requests waiting in each pool's max_conns queue, by pool name",
            ),
        },
    )


def class_round() -> Schema:
    return record(
        "the question the class is answering (a lesson's predict block): counts, never who",
        {
            "id": whole("the round's number; an answer names it", 1),
            "slug": text("the lesson it comes from"),
            "index": whole("its block's number in that lesson", 0),
            "question": text("the question"),
            "options": listing(text("an option"), "what a viewer may answer"),
            "tally": mapping(whole("answers", 0), "answers so far, per option"),
            "answers": whole("viewers who answered (each counted once)", 0),
            "status": text("open: answers are counted; revealed: the outcome is in",
                           ("open", "revealed")),
            "outcome": maybe(
                record(
                    "what really happened, once revealed",
                    {"answer": text("the right option"), "reason": text("why, for a learner")},
                )
            ),
        },
    )  # fmt: skip


def classroom() -> Schema:
    return record(
        "the classroom, one for the lab: every page on every web front sees the same",
        {
            "position": record(
                "where the presenter is: viewers who follow go there too",
                {
                    "lesson": text("the lesson's address; empty: no lesson"),
                    "section": whole("headings above the reading line in the lesson", 0),
                    "panel": flag("whether the lesson panel is open"),
                    "presenter_view": flag("whether the presenter view is on"),
                },
            ),
            "viewers": whole("viewers connected, summed over the web fronts", 0),
            "step": flag("step mode: the traffic holds, each Step sends one request"),
            "steps": whole("Step presses so far: a page shows the decision of the newest", 0),
            "holds": listing(
                text("why", ("round", "step")), "why the traffic is held (paused), if it is"
            ),
            "round": maybe(class_round()),
        },
    )


def you() -> Schema:
    return record(
        "who this page is, decided by the server (sent on connect, to this page only)",
        {
            "role": text("presenter and user command the lab; viewer watches and answers",
                         ("presenter", "viewer", "user")),
            "classroom": flag("whether the lab is a classroom"),
            "viewer_url": text("the viewers' URL (the presenter's page only)"),
            "qr_svg": text("that URL as a QR code, SVG (the presenter's page only)"),
        },
        optional=("viewer_url", "qr_svg"),
    )  # fmt: skip


def backend_card() -> Schema:
    fields: dict[str, Schema] = {
        "name": text("b1, b2, ..."),
        "address": text("where its process listens, host:port"),
        "weight": whole("its weight", 1),
        "process": text("its process", ("running", "killed", "exited")),
        "state": text("what the card shows", CARD_STATES),
        "reason": text("why it is not up; empty when up"),
        "draining": flag("no new requests; in-flight ones finish"),
        "backup": flag("used only while every primary is down"),
        "effective_weight": number("its weight now, lower while warming up (slow start)", 0),
        "healthy": flag("whether the balancer gives it traffic"),
        "active": whole("in flight", 0),
        "total": whole("routed here", 0),
        "failures": whole("failures seen on real traffic", 0),
        "datagrams": whole("mode udp: datagrams from clients forwarded to it", 0),
        "ewma_ms": number("peak EWMA of its response time, ms", 0),
        "latency_ms": number("the latency knob: added to every answer, ms", 0),
        "jitter_ms": number("the jitter knob: up to this much more, at random, ms", 0),
        "error_rate": number("the share of requests it answers with 500", 0, 1),
        "max_concurrency": whole("requests it works on at once (0: no limit)", 0),
    }
    return record("one backend, for its card", fields)


def comparison() -> Schema:
    return maybe(
        record(
            "a comparison (null: none is open). This state is its left side; the right side "
            "has its own backends (alike) and balancer, and gets the same traffic",
            {
                "seed": whole("the traffic's seed: the same seed repeats the same arrivals", 0),
                "sides": listing(text("a side", SIDES), "the sides, in order: left, right"),
                "right": state(with_compare=False),
            },
        )
    )


def state(with_compare: bool = True) -> Schema:
    traffic = {
        "anyOf": [
            record(
                "the traffic generator's settings",
                {
                    "available": {"const": True, "description": "it is running"},
                    "target": text("where it sends requests"),
                    "rate": number("requests per second", 0),
                    "clients": whole("simulated clients, each from its own address", 1),
                    "keep_alive": flag("whether clients reuse connections"),
                    "paused": flag("whether it is paused"),
                    "protocol": text(
                        "what the clients send: requests or datagrams", ("http", "udp")
                    ),
                    "udp_session": whole(
                        "udp: datagrams from one source port before a fresh one (0: never)", 0
                    ),
                    "heavy_share": number(
                        "the share (0-1) of requests that ask for /report, the expensive page",
                        0,
                        1,
                    ),
                    "heavy_ms": number("how much longer /report takes a backend, in ms", 0),
                    "client_addresses": text(
                        "how each client's own address reaches the balancer: bound (each "
                        "sends from it), proxy-v1 or proxy-v2 (named in a PROXY header, where "
                        "127.0.0.2 and up cannot be bound), shared (one address for all)",
                        ("bound", "proxy-v1", "proxy-v2", "shared"),
                    ),
                    "tls": flag("whether clients speak HTTPS, verified against the lab's CA"),
                    "sni_mix": mapping(
                        whole("its share", 1),
                        "the SNI names the clients ask for, with their shares; empty: the "
                        "target's host",
                    ),
                    "resumption": flag(
                        "whether each client offers its last TLS session (no full handshake)"
                    ),
                },
            ),
            record(
                "no traffic generator",
                {
                    "available": {"const": False, "description": "it is not running"},
                    "error": text("why"),
                },
            ),
        ],
        "description": "the traffic generator",
    }
    return record(
        "the whole picture: sent to a page when it connects and to every page after a change",
        {
            "mode": text("the balancer's layer", MODES),
            "algorithm": text("the default pool's algorithm"),
            "hash_key": text("what the hashing algorithms hash"),
            "algorithms": listing(text("an algorithm"), "every algorithm, in the lessons' order"),
            "hash_keys": listing(text("a hash key"), "every hash key"),
            "modes": listing(text("a mode"), "every mode"),
            "balancer": record(
                "where the balancer listens",
                {"listen": text("traffic, host:port"), "admin": text("admin API, host:port")},
            ),
            "udp": record(
                "the balancer's UDP settings the page draws with",
                {
                    "idle_timeout_ms": whole("a flow ends after this long idle; its line fades", 1),
                    "per_datagram": flag("every datagram is balanced on its own"),
                },
            ),
            "tls": record(
                "the balancer's HTTPS settings the page draws with",
                {
                    "mode": text(
                        "off; terminate (Layer 7 decrypts); passthrough (Layer 4 reads the SNI)",
                        ("off", "terminate", "passthrough"),
                    ),
                    "upstream": flag("terminated traffic is encrypted again to the backends"),
                },
            ),
            "backends": listing(backend_card(), "every backend, in order"),
            "pools": listing(
                record(
                    "a pool: a group of backends and the algorithm that picks among them",
                    {
                        "name": text("its name; `default` holds every backend unless set"),
                        "algorithm": text("its algorithm"),
                        "backends": listing(text("a backend's name"), "its backends"),
                    },
                ),
                "the balancer's pools, the default first",
            ),
            "rules": listing(
                anything("a routing rule as the balancer's /state gives it: name, pool, match"),
                "the routing rules, in the order they are tried (Layer 7)",
            ),
            "max_backends": whole("the most backends a lab may have", 1),
            "traffic": traffic,
            "counters": counters(),
            "latency_history": listing(latency_point(), "the last minute, oldest first"),
            "problem": text("why the lab is broken; empty when it is not"),
            "lesson": maybe(
                record(
                    "the lesson applied last",
                    {"slug": text("its address"), "title": text("its title")},
                )
            ),
            "config_snippets": mapping(
                text("a configuration"), "the same balancer as nginx and HAProxy would write it"
            ),
            "classroom": classroom(),
            **({"compare": comparison()} if with_compare else {}),
        },
    )


def batch() -> Schema:
    return record(
        "what happened since the last batch (about every 50 ms while anything happens)",
        {
            "events": listing(
                anything("a balancer event (see the event kinds)"),
                "events, sampled when traffic is heavy: every request is counted, not drawn",
            ),
            "omitted": whole("requests left out of events (sampling)", 0),
            "routed": mapping(
                text("the backend"),
                "every client routed in this batch, drawn or not, and its latest backend "
                "(at most 256 clients): who moved, exactly, whatever was sampled",
            ),
            "latency": listing(latency_point(), "the seconds that ended since the last batch"),
            "latency_now": maybe(latency_point()),
            "counters": counters(),
            "side": text(
                "during a comparison, the side whose balancer this batch is from (absent: "
                "the lab's only side)",
                SIDES,
            ),
        },
        optional=("side", "routed"),
    )


def acknowledgement() -> Schema:
    return {
        "description": "the answer to every command",
        "anyOf": [
            record("done", {"ok": {"const": True, "description": "it was carried out"}}),
            record(
                "refused: nothing changed, or a fresh state says what did",
                {
                    "ok": {"const": False, "description": "it was not carried out"},
                    "error": text("what was wrong, for a person"),
                },
            ),
        ],
    }
