"""The HAProxy snippet: `backend` sections (and, with rules, a `frontend`) doing what the lab does.

Generated from a balancer config (see lab.lessons.snippets). HAProxy counts
retries after the first try, and open-source HAProxy has no UDP: for a UDP
lab the snippet says so and what to use instead.
"""

from __future__ import annotations

from lab.lessons import snippet_proxy, snippet_tls
from lab.lessons.snippet_rules import Pool, haproxy_frontend, named_rules, pools_of, time_text
from lab.lessons.snippet_shared import DEFAULT_TIMEOUTS, budget_note, hash_source
from lab.lessons.snippet_tunnels import haproxy_tunnels

HAPROXY_TIMEOUTS = {  # ... and HAProxy's (each may stand in a backend section)
    "connect_ms": "connect",
    "client_header_ms": "http-request",
    "idle_ms": "http-keep-alive",
    "backend_response_ms": "server",
    "queue_ms": "queue",
}


def _haproxy_balance(algorithm: str, hash_key: str, mode: str) -> list[str]:
    if algorithm == "round-robin":
        return ["balance roundrobin"]
    if algorithm == "least-connections":
        return ["balance leastconn"]
    if algorithm == "random":
        return ["balance random(1)"]
    if algorithm == "power-of-two-choices":
        return ["balance random(2)"]
    if algorithm == "ip-hash":
        return ["balance source", "hash-type map-based"]
    if algorithm == "consistent-hash":
        _, expression = hash_source(hash_key, mode)
        return [f"balance {expression}", "hash-type consistent"]
    if algorithm == "least-response-time":
        return ["# no response-time balance", "balance leastconn"]
    return [f"# no HAProxy equivalent for {algorithm}"]


def _haproxy_backend(config: dict, pool: Pool) -> list[str]:
    mode = config.get("mode", "http")
    health = config.get("health") or {}
    sticky = config.get("sticky") or {}
    cookie = sticky.get("mode") == "cookie" and mode == "http"
    lines = [f"backend {pool.upstream}", f"    mode {mode}"]
    lines += [f"    {line}" for line in _haproxy_balance(pool.algorithm, pool.hash_key, mode)]
    if mode == "http":
        lines.append("    option forwardfor  # X-Forwarded-For, as the lab adds")
    check = ""
    if health.get("enabled"):
        if (health.get("type") or mode) == "http":
            lines.append(f"    option httpchk GET {health.get('path', '/health')}")
        lines.append(f"    timeout check {time_text(health.get('timeout_ms', 1000))}")
        check = (
            f" check inter {time_text(health.get('interval_ms', 2000))}"
            f" rise {health.get('rise', 2)} fall {health.get('fall', 3)}"
        )
    if cookie:
        lines.append(f"    cookie {sticky.get('cookie', 'SERVERID')} insert indirect nocache")
    elif sticky.get("mode") == "source":
        expire = time_text(round(float(sticky.get("expire_s", 1800)) * 1000))
        lines += ["    stick-table type ip size 100k expire " + expire, "    stick on src"]
    lines += _haproxy_proxying(config)
    slow_start = config.get("slow_start_s") or 0
    for backend in pool.backends:
        parts = [f"    server {backend['name']} {backend['address']}"]
        if backend.get("weight", 1) != 1:
            parts.append(f"weight {backend['weight']}")
        if backend.get("max_conns"):
            parts.append(f"maxconn {backend['max_conns']}")
        if backend.get("backup"):
            parts.append("backup")
        if cookie:
            parts.append(f"cookie {backend['name']}")
        if slow_start:
            parts.append(f"slowstart {time_text(round(slow_start * 1000))}")
        lines.append(" ".join(parts) + check + snippet_proxy.haproxy_server_option(config))
    return lines


def _haproxy_proxying(config: dict) -> list[str]:
    """Retries (HAProxy counts them after the first try) and timeouts that are not the lab's."""
    mode = config.get("mode", "http")
    tries = (config.get("retries") or {}).get("tries", 3)
    lines = [f"    retries {tries - 1}"]
    if tries > 1:
        lines.append("    option redispatch  # a retry goes to another server")
        lines += budget_note(config.get("retries") or {}, "    ")
    timeouts = config.get("timeouts") or {}
    for key, name in HAPROXY_TIMEOUTS.items():
        value = timeouts.get(key, DEFAULT_TIMEOUTS[key])
        layer7_only = key in ("client_header_ms", "idle_ms")
        if value != DEFAULT_TIMEOUTS[key] and not (layer7_only and mode == "tcp"):
            lines.append(f"    timeout {name} {time_text(value)}")
    return lines + (haproxy_tunnels(config) if mode != "tcp" else [])


HAPROXY_NO_UDP = """\
# Open-source HAProxy does not load-balance UDP.
# Its proxies (mode tcp, mode http) take TCP connections only: no backend
# section written here could carry the lab's datagrams, so none is.
# For UDP use nginx's stream { } (the nginx tab), LVS/IPVS, Envoy's UDP proxy
# or a cloud network load balancer. (HAProxy Enterprise sells a UDP module.)"""


def haproxy_snippet(config: dict) -> str:
    """The `backend` sections (and, with rules, the `frontend`) that do what the lab does."""
    mode = config.get("mode", "http")
    if mode == "udp":
        return HAPROXY_NO_UDP
    pools = pools_of(config)
    lines = []
    rules = named_rules(config)
    if rules and mode != "tcp":
        lines += [*haproxy_frontend(rules, pools, config.get("listen", "127.0.0.1:8080")), ""]
    for i, pool in enumerate(pools):
        if i:
            lines.append("")
        lines += _haproxy_backend(config, pool)
    lines = snippet_proxy.haproxy_frontend(config, lines)
    return "\n".join(snippet_tls.haproxy_lines(config, lines, pools))
