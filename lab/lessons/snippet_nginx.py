"""The nginx snippet: `upstream` blocks and the proxying around them, for http { } or stream { }.

Generated from a balancer config (see lab.lessons.snippets). Open-source nginx
has no active health checks (`health_check`) or slow start (NGINX Plus has
them): the snippet says so in a comment and uses the nearest thing it has.

Open-source nginx is catching up with NGINX Plus: `sticky` (cookie, route,
learn) and `server ... drain` came in 1.29.6 (2026-03-10), `least_time` in
1.31.0 (2026-05-13), as nginx's own CHANGES say. A line that needs such a
version ends in a comment saying so (`# nginx 1.29.6+`), because many systems
still ship an older nginx (Debian 12: 1.22).

`for_nginx_version` comments out the lines an installed nginx is too old to
know, so `nginx -t` checks exactly what that version accepts.
"""

from __future__ import annotations

import math
import re

from lab.lessons import snippet_proxy, snippet_tls
from lab.lessons.snippet_rules import (
    FORWARDED_FOR,
    UPSTREAM,
    Pool,
    named_rules,
    nginx_router,
    pools_of,
    time_text,
)
from lab.lessons.snippet_shared import DEFAULT_TIMEOUTS, budget_note, hash_source
from lab.lessons.snippet_tunnels import nginx_tunnels

# The lab's algorithms whose nginx method allows `backup` servers (hash and random do not).
BACKUP_METHODS = ("round-robin", "least-connections", "least-response-time")
# The first open-source nginx with each directive (nginx's CHANGES, docs/xml/nginx/changes.xml).
STICKY_SINCE = "1.29.6"  # sticky cookie | route | learn, and server ... drain
LEAST_TIME_SINCE = "1.31.0"
# How a generated line says the nginx version it needs, and how for_nginx_version finds it.
NEEDS = "# nginx {}+"
NEEDS_PATTERN = re.compile(r"# nginx (\d+)\.(\d+)\.(\d+)\+")
NGINX_TIMEOUTS = {  # the lab's timeout -> nginx's directive (http { }, server { } or location)
    "connect_ms": "proxy_connect_timeout",
    "client_header_ms": "client_header_timeout",
    "idle_ms": "keepalive_timeout",
    "backend_response_ms": "proxy_read_timeout",
}


def _nginx_method(algorithm: str, hash_key: str, mode: str) -> list[str]:
    if algorithm == "round-robin":
        return ["# round robin: the default"]
    if algorithm == "least-connections":
        return ["least_conn;"]
    if algorithm == "random":
        return ["random;"]
    if algorithm == "power-of-two-choices":
        return ["random two least_conn;"]
    if algorithm == "ip-hash":
        if mode == "udp":
            return ["# the flow's address and port", "hash $remote_addr:$remote_port;"]
        return ["# not ip_hash: it hashes 3 octets", "hash $remote_addr;"]
    if algorithm == "consistent-hash":
        variable, _ = hash_source(hash_key, mode)
        lines = [f"hash {variable} consistent;"]
        if mode in ("tcp", "udp") and hash_key != "client-ip":
            lines.insert(0, "# Layer 4: only the address" + (" and port" if mode == "udp" else ""))
        return lines
    if algorithm == "least-response-time":
        # last_byte: the lab times the whole answer, as nginx does with last_byte
        return [f"least_time last_byte;  {NEEDS.format(LEAST_TIME_SINCE)}"]
    return [f"# no nginx equivalent for {algorithm}"]


def _nginx_server(backend: dict, passive: str, backup_allowed: bool) -> str:
    parts = [f"server {backend['address']}"]
    if backend.get("weight", 1) != 1:
        parts.append(f"weight={backend['weight']}")
    if backend.get("max_conns"):
        parts.append(f"max_conns={backend['max_conns']}")
    if passive:
        parts.append(passive)
    note = backend["name"]
    if backend.get("backup"):
        if backup_allowed:
            parts.append("backup")
        else:  # nginx allows backup servers only with round robin and least_conn
            note += ", backup: not here in nginx"
    return " ".join(parts) + f";  # {note}"


def _nginx_passive(config: dict) -> str:
    """Per-server passive health, when it differs from nginx's own defaults."""
    passive = config.get("passive") or {}
    if passive.get("max_fails", 1) == 1 and passive.get("fail_timeout_s", 10) == 10:
        return ""
    # nginx takes fail_timeout in whole seconds only
    seconds = max(math.ceil(float(passive.get("fail_timeout_s", 10))), 1)
    return f"max_fails={passive.get('max_fails', 1)} fail_timeout={seconds}s"


def _nginx_notes(config: dict) -> list[str]:
    """What the lab does here and open-source nginx cannot, said where it would go."""
    notes = []
    if (config.get("health") or {}).get("enabled"):
        udp = " udp" if config.get("mode") == "udp" else ""
        notes.append(f"# active health checks (health_check{udp}): NGINX Plus only;")
        notes.append("# open-source nginx sees failures on real traffic (max_fails)")
    sticky = (config.get("sticky") or {}).get("mode", "off")
    if sticky == "source":
        notes.append("# no stick table in nginx: sticky pins by cookie or route, not by")
        notes.append("# address; hash $remote_addr consistent keeps clients by hashing")
    if config.get("slow_start_s"):
        notes.append("# slow_start: NGINX Plus only")
    return notes


def _nginx_sticky(config: dict) -> list[str]:
    """The sticky cookie, after the method: `sticky` wraps the method set before it."""
    sticky = config.get("sticky") or {}
    if sticky.get("mode") != "cookie" or config.get("mode", "http") != "http":
        return []
    return [f"sticky cookie {sticky.get('cookie', 'SERVERID')};  {NEEDS.format(STICKY_SINCE)}"]


def _nginx_upstream(config: dict, pool: Pool, notes: list[str]) -> list[str]:
    mode = config.get("mode", "http")
    lines = [f"upstream {pool.upstream} {{"]
    lines += [f"    {line}" for line in _nginx_method(pool.algorithm, pool.hash_key, mode)]
    lines += [f"    {line}" for line in _nginx_sticky(config)]
    passive = _nginx_passive(config)
    # nginx wants a primary server in every upstream; a pool of backups only uses them anyway
    backup_allowed = pool.algorithm in BACKUP_METHODS and not all(
        b.get("backup") for b in pool.backends
    )
    lines += [f"    {_nginx_server(b, passive, backup_allowed)}" for b in pool.backends]
    if mode == "http":
        lines.append("    keepalive 16;")
    lines += [f"    {note}" for note in notes]
    return [*lines, "}"]


def _nginx_proxying(config: dict) -> list[str]:
    """Retries and timeouts: proxy settings, outside the upstream block."""
    mode = config.get("mode", "http")
    retries = config.get("retries") or {}
    tries = retries.get("tries", 3)
    lines = []
    if tries == 1:
        lines.append("proxy_next_upstream off;  # no retries")
    else:
        if retries.get("non_idempotent") and mode != "tcp":
            lines.append("proxy_next_upstream error timeout non_idempotent;")
        lines.append(f"proxy_next_upstream_tries {tries};  # a failed try goes to another server")
        lines += budget_note(retries, "")
    if mode != "tcp":  # the lab adds it; nginx only when told (and not at Layer 4)
        lines.append(f"proxy_set_header X-Forwarded-For {FORWARDED_FOR};")
        lines += nginx_tunnels(config)  # with the note that a location must repeat them
    timeouts = config.get("timeouts") or {}
    for key, directive in NGINX_TIMEOUTS.items():
        value = timeouts.get(key, DEFAULT_TIMEOUTS[key])
        if value != DEFAULT_TIMEOUTS[key] and (mode != "tcp" or key == "connect_ms"):
            lines.append(f"{directive} {time_text(value)};")
    return lines


def _nginx_udp(config: dict) -> list[str]:
    """mode udp: the listener itself, since its flow settings live on the `server`."""
    udp = config.get("udp") or {}
    idle = udp.get("idle_timeout_ms", 10_000)
    lines = [
        "server {",
        f"    listen {config.get('listen', '127.0.0.1:8080')} udp;",
        f"    proxy_pass {UPSTREAM};",
        f"    proxy_timeout {time_text(idle)};  # udp.idle_timeout_ms: an idle session ends",
    ]
    if udp.get("per_datagram"):
        lines.append("    proxy_responses 1;  # per_datagram: one reply ends it; next is balanced")
    else:
        lines.append("    # no proxy_responses: a session (a flow) lasts until proxy_timeout")
    lines.append("    # udp.max_flows: no such limit; each session takes a worker_connections slot")
    return [*lines, "}"]


def nginx_snippet(config: dict) -> str:
    """The upstream blocks (and, with rules, the routing) that do what the lab's balancer does."""
    mode = config.get("mode", "http")
    context = {"tcp": "stream { } (Layer 4)", "udp": "stream { } (Layer 4, UDP)"}
    lines = [f"# inside {context.get(mode, 'http { } (Layer 7)')}"]
    pools = pools_of(config)
    for i, pool in enumerate(pools):
        if i:
            lines.append(f"# pool {pool.name}")
        lines += _nginx_upstream(config, pool, _nginx_notes(config) if i == 0 else [])
    if mode == "udp":
        lines += _nginx_udp(config)
    else:
        lines += _nginx_proxying(config)
    rules = named_rules(config)
    if rules and mode != "tcp":
        lines += nginx_router(rules, pools, config.get("listen", "127.0.0.1:8080"))
    lines = snippet_proxy.nginx_lines(config, lines)
    lines = snippet_tls.nginx_lines(config, lines, pools)
    newest = max((_needs(line) for line in lines), default=None, key=lambda v: v or (0, 0, 0))
    if newest:
        lines.insert(1, f"# needs nginx {_version_text(newest)} or later (Debian 12 has 1.22)")
    return "\n".join(lines)


def _needs(line: str) -> tuple[int, int, int] | None:
    """The nginx version a generated line says it needs, if it says so."""
    found = NEEDS_PATTERN.search(line)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def _version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def for_nginx_version(snippet: str, version: tuple[int, int, int]) -> str:
    """The snippet as an nginx of `version` must read it: newer directives commented out.

    Each such line stays, as a comment saying why, so `nginx -t` checks everything
    that version accepts and nothing it cannot know.
    """
    lines = []
    for line in snippet.splitlines():
        needed = _needs(line)
        if needed and needed > version and not line.lstrip().startswith("#"):
            indent = line[: len(line) - len(line.lstrip())]
            older = _version_text(version)
            line = f"{indent}# not in nginx {older}: {line.lstrip()}"
        lines.append(line)
    return "\n".join(lines)
