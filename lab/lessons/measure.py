"""Measurements: the names an `expect` check may use, worked out from the lab's real numbers.

Every number comes from a process of the lab, read when the check runs:

    routed, routed.b1      the balancer's routing decisions (requests at Layer 7,
                           connections at Layer 4), from its GET /state
    served, served.b1      requests the backend process itself answered (/_lab/state)
    backends_idle          backends whose process served nothing (with two balancers on
                           the same backends: nothing from either)
    active, failures, healthy, draining, weight (and .b1 ...)   the balancer's, per backend
    <any of those>.max / .min   the largest / smallest over the backends
    backends               how many backends the balancer has
    sent, completed, failed, status.2xx, status.4xx, status.5xx   the traffic generator's
    p50_ms, p95_ms         the traffic generator's response times (what clients waited)
    handshakes, resumed    HTTPS: TLS handshakes the clients made, and those that resumed a
                           session (no key exchange)
    decisions, retries     route events seen (retries: the ones that were a retry)
    backends_used          how many backends the route events went to
    clients                how many client addresses the route events came from
    clients_split          clients whose requests went to more than one backend
    moved                  the share (0-1) of clients that go to another backend than
                           before the last counter reset (clients seen in both)
    moved_to.b4            the share (0-1) of those clients that moved to b4
    sticky                 route events a sticky pin decided (cookie or stick table)
    backend_peers          how many TCP peer addresses the backends' served requests came
                           from (behind the balancer: 1, the balancer itself)
    backend_clients        how many client addresses the backends were told, by a PROXY
                           header or by X-Forwarded-For (lab.backend.clients)
    backend_clients.proxy_protocol, backend_clients.forwarded_for   ...told each way
    backends_per_client    the most backends any one client was served by, as the backends
                           were told (1: every client stuck to one backend, whichever
                           balancer its requests went through)
    rule.api, pool.api     route events that rule `api` matched / that pool `api` served
                           (pool.default: the default pool); 0 for every rule and pool
                           the balancer has, whether used or not
    checks, checks.b1      active health checks (probes) of each backend...
    checks_failed, ...     ...and the ones that failed
    marked_down, marked_up health events taking a backend out of service / putting it
                           back: .b1 per backend, .active (by the active checks) or
                           .passive (by passive health, on real traffic)
    datagrams, datagrams.b1  mode udp: datagrams from clients forwarded to each backend
    flows                  mode udp: flows the balancer holds now
    ended.idle, ...        mode udp: flows that ended, by why (done events' `end`, with _
                           for -): idle, evicted, backend_down, refused, answered, reset

    p50, p95, p99, max_ms  every answer's response time since the last reset, to 1%
                           (during a comparison: the comparison's numbers)

During a comparison, `left.` or `right.` in front of any name reads that side
(`right.p95 < left.p95 / 3`); without one, a name reads the left side (the lab).

`before.` in front of any name reads it as it was when the last counting window
closed, just before the counters were zeroed: `p99 > 5 * before.p99` compares
this run with the one before it (the same traffic at a lower rate, say).

All of them count from the last counter reset (opening a lesson resets too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from lab.vocabulary.events import CHECK, DONE, FLOW_ENDS, HEALTH, ROUTE

PER_BACKEND = (
    "routed", "served", "active", "failures", "healthy", "draining", "weight", "datagrams",
)  # fmt: skip
# Counted from the events, per backend; the health verdicts also by who gave them.
EVENT_FAMILIES = ("checks", "checks_failed")
HEALTH_FAMILIES = ("marked_down", "marked_up")
SOURCES = ("active", "passive")
NAMED = ("rule", "pool")  # families whose parts are the names of rules and pools
ENDED = tuple(end.replace("-", "_") for end in FLOW_ENDS)  # ended.idle, ended.backend_down...
SCALARS = (
    "backends",
    "backends_idle",
    "sent",
    "completed",
    "failed",
    "in_flight",
    "status.2xx",
    "status.4xx",
    "status.5xx",
    "p50_ms",
    "p95_ms",
    "decisions",
    "retries",
    "backends_used",
    "clients",
    "clients_split",
    "moved",
    "sticky",
    "p50",
    "p95",
    "p99",
    "max_ms",
    "flows",
    *(f"ended.{end}" for end in ENDED),
    "backend_peers",
    "backend_clients",
    "backend_clients.proxy_protocol",
    "backend_clients.forwarded_for",
    "backends_per_client",
    "handshakes",
    "resumed",
)
TOLD = ("proxy_protocol", "forwarded_for")  # the ways a backend is told the client (clients.py)
SIDES = ("left", "right")  # a comparison's sides, as a name's first part
BEFORE = "before"  # the last window's numbers, as a name's first part
FAMILY_NAME = re.compile(r"^(?P<family>[a-z_]+)(?:\.(?P<part>b[1-9][0-9]?|max|min))?$")
BACKEND_ONLY = ("moved_to",)  # families with only per-backend members
NAMED_NAME = re.compile(r"^(?P<family>[a-z_]+)\.(?P<part>[a-z0-9_]+)$")


def known(name: str) -> bool:
    """True if `name` is a measurement a check may use (backend, rule and pool names are
    not checked here: a lesson's own settings and steps decide which exist)."""
    side, _, rest = name.partition(".")
    if side in SIDES and rest:
        return known(rest)
    if side == BEFORE and rest and not rest.startswith(f"{BEFORE}."):
        return known(rest)
    if name in SCALARS:
        return True
    named = NAMED_NAME.match(name)
    if named and named["family"] in NAMED:
        return True
    if named and named["family"] in HEALTH_FAMILIES and named["part"] in SOURCES:
        return True
    match = FAMILY_NAME.match(name)
    if match and match["family"] in BACKEND_ONLY:
        return (match["part"] or "").startswith("b")
    return bool(match and match["family"] in (*PER_BACKEND, *EVENT_FAMILIES, *HEALTH_FAMILIES))


def routes(events: Iterable[dict]) -> list[dict]:
    return [e for e in events if e.get("type") == ROUTE]


def client_map(events: Iterable[dict]) -> dict[str, set[str]]:
    """Client address -> the backends its routed requests went to."""
    seen: dict[str, set[str]] = {}
    for event in routes(events):
        seen.setdefault(event.get("client", ""), set()).add(event.get("backend", ""))
    return seen


def measure(
    balancer: dict,
    traffic: dict | None,
    served: dict[str, int],
    windows: Sequence[list[dict]],
    clients: Sequence[dict[str, dict[str, int]]] = (),
) -> dict[str, float]:
    """Every measurement, from the balancer's and the generator's /state, the backends'
    served counts and the events (one list per counting window, the current one last),
    and the `clients` each backend's /_lab/state reported."""
    metrics: dict[str, float] = {}
    backends = balancer["backends"]
    metrics["backends"] = len(backends)
    metrics["flows"] = balancer.get("udp", {}).get("flows", 0)
    per: dict[str, dict[str, float]] = {family: {} for family in PER_BACKEND}
    for backend in backends:
        name = backend["name"]
        per["routed"][name] = backend["total"]
        per["served"][name] = served.get(name, 0)
        per["active"][name] = backend["active"]
        per["failures"][name] = backend["failures"]
        per["healthy"][name] = 1 if backend["healthy"] else 0
        per["draining"][name] = 1 if backend.get("draining") else 0
        per["weight"][name] = backend["weight"]
        per["datagrams"][name] = backend.get("datagrams", 0)
    for family, values in per.items():
        _family(metrics, family, values)
    metrics["backends_idle"] = sum(1 for value in per["served"].values() if value == 0)
    if traffic is not None:
        _traffic(metrics, traffic)
    current = windows[-1] if windows else []
    _events(metrics, current, windows[-2] if len(windows) > 1 else None)
    names = [b["name"] for b in backends]
    _health(metrics, current, names)
    _routing(metrics, current, balancer)
    _flows(metrics, current)
    _told(metrics, clients)
    return metrics


def _told(metrics: dict[str, float], clients: Sequence[dict[str, dict[str, int]]]) -> None:
    """Distinct addresses over all the backends: their peers, and the clients they were told."""

    def addresses(way: str) -> set[str]:
        return {address for table in clients for address in table.get(way, {}) if address}

    metrics["backend_peers"] = len(addresses("peer"))
    told: set[str] = set()
    for way in TOLD:
        named = addresses(way)
        metrics[f"backend_clients.{way}"] = len(named)
        told |= named
    metrics["backend_clients"] = len(told)
    reached: dict[str, int] = {}  # client -> how many backends were told of it
    for table in clients:
        for address in {a for way in TOLD for a in table.get(way, {}) if a}:
            reached[address] = reached.get(address, 0) + 1
    metrics["backends_per_client"] = max(reached.values(), default=0)


def _flows(metrics: dict[str, float], events: list[dict]) -> None:
    """UDP flows that ended in this window, by why."""
    for end in ENDED:
        metrics[f"ended.{end}"] = 0
    for event in events:
        if event.get("type") == DONE and "end" in event:
            key = f"ended.{str(event['end']).replace('-', '_')}"
            metrics[key] = metrics.get(key, 0) + 1


def _family(metrics: dict[str, float], family: str, values: dict[str, float]) -> None:
    metrics[family] = sum(values.values())
    for name, value in values.items():
        metrics[f"{family}.{name}"] = value
    if values:
        metrics[f"{family}.max"] = max(values.values())
        metrics[f"{family}.min"] = min(values.values())


def _traffic(metrics: dict[str, float], traffic: dict[str, Any]) -> None:
    counters = traffic["counters"]
    for key in ("sent", "completed", "failed", "in_flight"):
        metrics[key] = counters[key]
    for key in ("2xx", "4xx", "5xx"):
        metrics[f"status.{key}"] = counters["status"].get(key, 0)
    tls = counters.get("tls") or {}
    for key in ("handshakes", "resumed"):
        metrics[key] = tls.get(key, 0)
    for key in ("p50", "p95"):
        value = traffic["latency_ms"].get(key)
        if value is not None:  # no answers yet: a check that reads it says so
            metrics[f"{key}_ms"] = value
    spread = traffic.get("distribution") or {}
    for key, name in (("p50", "p50"), ("p95", "p95"), ("p99", "p99"), ("max", "max_ms")):
        if spread.get(key) is not None:
            metrics[name] = spread[key]


def _events(metrics: dict[str, float], events: list[dict], before: list[dict] | None) -> None:
    routed = routes(events)
    metrics["decisions"] = len(routed)
    metrics["retries"] = sum(1 for e in routed if e.get("retry"))
    metrics["sticky"] = sum(1 for e in routed if e.get("sticky"))
    metrics["backends_used"] = len({e.get("backend") for e in routed})
    now = client_map(events)
    metrics["clients"] = len(now)
    metrics["clients_split"] = sum(1 for backends in now.values() if len(backends) > 1)
    if before is not None:
        then = client_map(before)
        both = [c for c in now if c in then]
        if both:
            movers = [c for c in both if now[c] != then[c]]
            metrics["moved"] = len(movers) / len(both)
            for name in {b for c in now for b in now[c]}:
                went = sum(1 for c in movers if now[c] == {name})
                metrics[f"moved_to.{name}"] = went / len(both)


def _health(metrics: dict[str, float], events: list[dict], names: list[str]) -> None:
    """Probes and verdicts per backend (every backend the balancer has, 0 if none)."""
    counts: dict[str, dict[str, float]] = {
        family: dict.fromkeys(names, 0) for family in (*EVENT_FAMILIES, *HEALTH_FAMILIES)
    }
    by_source = {family: dict.fromkeys(SOURCES, 0) for family in HEALTH_FAMILIES}
    for event in events:
        kind, backend = event.get("type"), event.get("backend", "")
        if kind == CHECK:
            counts["checks"][backend] = counts["checks"].get(backend, 0) + 1
            if not event.get("ok"):
                failed = counts["checks_failed"]
                failed[backend] = failed.get(backend, 0) + 1
        elif kind == HEALTH:
            family = "marked_up" if event.get("healthy") else "marked_down"
            counts[family][backend] = counts[family].get(backend, 0) + 1
            source = event.get("source")
            if source in SOURCES:
                by_source[family][source] += 1
    for family, values in counts.items():
        _family(metrics, family, values)
    for family, values in by_source.items():
        for source, value in values.items():
            metrics[f"{family}.{source}"] = value


def _routing(metrics: dict[str, float], events: list[dict], balancer: dict) -> None:
    """Route events by the rule that matched and the pool that served them."""
    rules = dict.fromkeys((r["name"] for r in balancer.get("rules", [])), 0)
    pools = dict.fromkeys((p["name"] for p in balancer.get("pools", [])), 0)
    pools.setdefault("default", 0)
    for event in routes(events):
        rule = event.get("rule")
        if rule is not None:
            rules[rule] = rules.get(rule, 0) + 1
        pool = event.get("pool", "default")
        pools[pool] = pools.get(pool, 0) + 1
    for name, value in rules.items():
        metrics[f"rule.{name}"] = value
    for name, value in pools.items():
        metrics[f"pool.{name}"] = value
