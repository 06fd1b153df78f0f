"""The lab as the page sees it: `state` snapshots and batch counters, built from the APIs' answers.

Pure functions of what the balancer's `GET /state` and the traffic generator's
`GET /state` said, plus what the controller knows of its backends, so the
shapes documented in lab.web.app can be tested without starting anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lab.balancer.algorithms import ALGORITHM_NAMES, HASH_KEYS
from lab.balancer.config import MODES

# Per backend in every batch. `state` is the balancer's view (up, warming, down, draining,
# drained), so a card follows health checks between full snapshots.
PER_BACKEND = ("active", "total", "failures", "ewma_ms", "healthy", "state", "reason")
# What a card says in place of the balancer's view while the process does not run.
NOT_RUNNING = {"killed": "killed", "exited": "down"}
TRAFFIC_SETTINGS = (
    "target", "rate", "clients", "keep_alive", "paused", "protocol", "udp_session",
    "heavy_share", "heavy_ms", "client_addresses",
)  # fmt: skip
# HTTPS (lab.traffic.tls), with the values of a generator that predates them.
TRAFFIC_TLS = {"tls": False, "sni_mix": {}, "resumption": True}
# The balancer's flow table at mode udp, for the header's counters (lab.balancer.flows).
UDP_COUNTERS = ("flows", "flows_started", "evicted", "expired", "datagrams_up", "datagrams_down")


def counters(balancer: dict, traffic: dict | None) -> dict:
    """The exact counters of a batch (and of a state)."""
    per = {
        b["name"]: {**{k: b.get(k) for k in PER_BACKEND}, "datagrams": b.get("datagrams", 0)}
        for b in balancer["backends"]
    }
    udp = balancer.get("udp", {})
    result: dict[str, Any] = {
        "total": sum(b["total"] for b in per.values()),
        "active": sum(b["active"] for b in per.values()),
        "failures": sum(b["failures"] for b in per.values()),
        "errors": balancer.get("errors", {}),
        "backends": per,
        "read": balancer.get("read", 0),  # the controller's reading number: newer is larger
        # Requests waiting in each pool's max_conns queue (the page stacks them).
        "queued": {p["name"]: p.get("queued", 0) for p in balancer.get("pools", [])},
        "udp": {k: udp.get(k, 0) for k in UDP_COUNTERS},
        "traffic": None,
    }
    if traffic is not None:
        numbers = traffic["counters"]
        result["traffic"] = {
            **{k: numbers[k] for k in ("sent", "completed", "failed", "in_flight")},
            "status": numbers["status"],
            "latency_ms": traffic["latency_ms"],
        }
        if "distribution" in traffic:  # a comparison's side: every answer since it opened
            result["traffic"]["distribution"] = traffic["distribution"]
    return result


def backend_entry(record: Any, live: dict) -> dict:
    """One backend: what the controller knows (process, knobs) and what the balancer counts.

    `state` is the process's fate when it is not running (killed, down), else the
    balancer's view of it (up, warming, down, draining, drained), with its `reason`.
    """
    running = record.process == "running"
    return {
        "name": record.name,
        "address": record.address,
        "weight": live.get("weight", 1),
        "process": record.process,
        "state": live.get("state", "up") if running else NOT_RUNNING[record.process],
        "reason": live.get("reason", ""),
        "draining": live.get("draining", False),
        "backup": live.get("backup", False),
        "effective_weight": live.get("effective_weight", live.get("weight", 1)),
        "healthy": live.get("healthy", False),
        **{k: live.get(k, 0) for k in ("active", "total", "failures", "ewma_ms", "datagrams")},
        **record.knobs,
    }


def traffic_entry(traffic: dict | None, error: str) -> dict:
    if traffic is None:
        return {"available": False, "error": error or "not answering"}
    return {
        "available": True,
        **{k: traffic[k] for k in TRAFFIC_SETTINGS},
        **{k: traffic.get(k, default) for k, default in TRAFFIC_TLS.items()},
    }


def snapshot(
    balancer: dict,
    traffic: dict | None,
    records: Iterable[Any],
    *,
    traffic_error: str = "",
    history: list[dict] | None = None,
    problem: str = "",
    max_backends: int = 12,
) -> dict:
    """The full `state` event."""
    live = {b["name"]: b for b in balancer["backends"]}
    return {
        "mode": balancer["mode"],
        "algorithm": balancer["algorithm"],
        "hash_key": balancer["hash_key"],
        "algorithms": list(ALGORITHM_NAMES),
        "hash_keys": list(HASH_KEYS),
        "modes": list(MODES),
        "balancer": {"listen": balancer["listen"], "admin": balancer["admin"]},
        # How long a UDP flow lives idle: the page fades a flow's line over it.
        "udp": {
            k: balancer.get("settings", {}).get("udp", {}).get(k, default)
            for k, default in (("idle_timeout_ms", 10_000), ("per_datagram", False))
        },
        # HTTPS: the page puts a padlock on each encrypted hop and says what the balancer sees.
        "tls": {
            k: balancer.get("settings", {}).get("tls", {}).get(k, default)
            for k, default in (("mode", "off"), ("upstream", False))
        },
        "backends": [backend_entry(r, live.get(r.name, {})) for r in records],
        # Pools and the rules that feed them, for the page to group the cards.
        "pools": [
            {k: p.get(k) for k in ("name", "algorithm", "backends")}
            for p in balancer.get("pools", [])
        ],
        "rules": balancer.get("rules", []),
        "max_backends": max_backends,
        "traffic": traffic_entry(traffic, traffic_error),
        "counters": counters(balancer, traffic),
        "latency_history": history or [],
        "problem": problem,
    }
