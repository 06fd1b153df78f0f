"""The same setting in the real world: an nginx `upstream` block and HAProxy `backend` lines.

Generated from a balancer config (a lesson's, or the running balancer's /state),
never pasted, so what the page shows follows what the lab does. Where a peer
has no exact equivalent, the snippet says so in a comment and uses the
nearest thing it has (see the source notes in the README's table).

`nginx_config` and `haproxy_config` wrap a snippet into a whole file that
`nginx -t` and `haproxy -c` accept, which is how the tests check them.
"""

from __future__ import annotations

import math
from typing import Any

UPSTREAM = "lab"
# The lab's algorithms whose nginx method allows `backup` servers (hash and random do not).
BACKUP_METHODS = ("round-robin", "least-connections", "least-response-time")
NGINX_KEYS = {  # the lab's hash_key -> the nginx variable holding the same thing
    "client-ip": "$remote_addr",
    "path": "$uri",
}


def _hash_source(hash_key: str, mode: str) -> tuple[str, str]:
    """(nginx variable, HAProxy balance expression) for a consistent-hash key."""
    if mode == "tcp" or hash_key == "client-ip":
        return "$remote_addr", "source"
    if hash_key == "path":
        return "$uri", "uri"
    kind, _, name = hash_key.partition(":")
    if kind == "header":
        return "$http_" + name.lower().replace("-", "_"), f"hdr({name})"
    return "$cookie_" + name, f"hash req.cook({name})"


def _nginx_method(config: dict) -> list[str]:
    algorithm, mode = config.get("algorithm", "round-robin"), config.get("mode", "http")
    if algorithm == "round-robin":
        return ["# round robin: the default"]
    if algorithm == "least-connections":
        return ["least_conn;"]
    if algorithm == "random":
        return ["random;"]
    if algorithm == "power-of-two-choices":
        return ["random two least_conn;"]
    if algorithm == "ip-hash":
        return ["# not ip_hash: it hashes 3 octets", "hash $remote_addr;"]
    if algorithm == "consistent-hash":
        variable, _ = _hash_source(config.get("hash_key", "client-ip"), mode)
        lines = [f"hash {variable} consistent;"]
        if mode == "tcp" and config.get("hash_key", "client-ip") != "client-ip":
            lines.insert(0, "# Layer 4: only the address")
        return lines
    if algorithm == "least-response-time":
        return ["# least_time: NGINX Plus only", "least_conn;"]
    return [f"# no nginx equivalent for {algorithm}"]


def _nginx_server(backend: dict) -> str:
    parts = [f"server {backend['address']}"]
    if backend.get("weight", 1) != 1:
        parts.append(f"weight={backend['weight']}")
    if backend.get("max_conns"):
        parts.append(f"max_conns={backend['max_conns']}")
    passive = backend.get("_passive")
    if passive:
        parts.append(passive)
    note = backend["name"]
    if backend.get("backup"):
        if backend.get("_backup_allowed", True):
            parts.append("backup")
        else:  # nginx allows backup servers only with round robin and least_conn
            note += ", backup: not with this method in nginx"
    return " ".join(parts) + f";  # {note}"


def nginx_snippet(config: dict) -> str:
    """The `upstream` block that does what the lab's balancer does now."""
    mode = config.get("mode", "http")
    context = "stream { } (Layer 4)" if mode == "tcp" else "http { } (Layer 7)"
    passive = config.get("passive") or {}
    extra = ""
    if passive.get("max_fails", 1) != 1 or passive.get("fail_timeout_s", 10) != 10:
        extra = f"max_fails={passive.get('max_fails', 1)} fail_timeout={_seconds(passive)}"
    lines = [f"# inside {context}", f"upstream {UPSTREAM} {{"]
    lines += [f"    {line}" for line in _nginx_method(config)]
    backup_allowed = config.get("algorithm", "round-robin") in BACKUP_METHODS
    for backend in config.get("backends", []):
        server = {**backend, "_passive": extra, "_backup_allowed": backup_allowed}
        lines.append("    " + _nginx_server(server))
    if mode != "tcp":
        lines.append("    keepalive 16;")
    health = config.get("health") or {}
    if health.get("enabled"):
        lines.append("    # health_check: NGINX Plus only")
    sticky = (config.get("sticky") or {}).get("mode", "off")
    if sticky == "cookie":
        lines.append("    # sticky cookie: NGINX Plus only")
    elif sticky == "source":
        lines.append("    # sticky: NGINX Plus only")
    lines.append("}")
    return "\n".join(lines)


def _seconds(passive: dict) -> str:
    # nginx takes fail_timeout in whole seconds only
    return f"{max(math.ceil(float(passive.get('fail_timeout_s', 10))), 1)}s"


def _haproxy_balance(config: dict) -> list[str]:
    algorithm, mode = config.get("algorithm", "round-robin"), config.get("mode", "http")
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
        _, expression = _hash_source(config.get("hash_key", "client-ip"), mode)
        return [f"balance {expression}", "hash-type consistent"]
    if algorithm == "least-response-time":
        return ["# no response-time balance", "balance leastconn"]
    return [f"# no HAProxy equivalent for {algorithm}"]


def haproxy_snippet(config: dict) -> str:
    """The `backend` section that does what the lab's balancer does now."""
    mode = config.get("mode", "http")
    health = config.get("health") or {}
    sticky = config.get("sticky") or {}
    lines = [f"backend {UPSTREAM}", f"    mode {mode}"]
    lines += [f"    {line}" for line in _haproxy_balance(config)]
    check = ""
    if health.get("enabled"):
        if mode == "http" and health.get("type", "") in ("", "http"):
            lines.append(f"    option httpchk GET {health.get('path', '/health')}")
        check = (
            f" check inter {health.get('interval_ms', 2000)}ms"
            f" rise {health.get('rise', 2)} fall {health.get('fall', 3)}"
        )
    if sticky.get("mode") == "cookie" and mode == "http":
        lines.append(f"    cookie {sticky.get('cookie', 'SERVERID')} insert indirect nocache")
    elif sticky.get("mode") == "source":
        lines.append("    stick-table type ip size 100k expire 30m")
        lines.append("    stick on src")
    for backend in config.get("backends", []):
        parts = [f"    server {backend['name']} {backend['address']}"]
        if backend.get("weight", 1) != 1:
            parts.append(f"weight {backend['weight']}")
        if backend.get("max_conns"):
            parts.append(f"maxconn {backend['max_conns']}")
        if backend.get("backup"):
            parts.append("backup")
        if sticky.get("mode") == "cookie" and mode == "http":
            parts.append(f"cookie {backend['name']}")
        lines.append(" ".join(parts) + check)
    return "\n".join(lines)


def snippets(config: dict) -> dict[str, str]:
    """Both snippets for one balancer config (or the balancer's /state)."""
    return {"nginx": nginx_snippet(config), "haproxy": haproxy_snippet(config)}


def from_state(state: dict[str, Any]) -> dict[str, Any]:
    """The parts of a balancer's /state the snippets read."""
    keep = ("name", "address", "weight", "backup", "max_conns")
    tables = state.get("settings") if isinstance(state.get("settings"), dict) else state
    return {
        **{k: state[k] for k in ("mode", "algorithm", "hash_key") if k in state},
        **{k: tables[k] for k in ("health", "passive", "sticky") if _table(tables, k)},
        "backends": [{k: b[k] for k in keep if k in b} for b in state.get("backends", [])],
    }


def _table(tables: dict, name: str) -> bool:
    return isinstance(tables.get(name), dict)


def nginx_config(snippet: str, mode: str, folder: str, stream_module: str | None = None) -> str:
    """A whole nginx.conf around an upstream snippet, for `nginx -t`.

    A Layer 4 snippet needs the stream module; without one (`stream_module` None)
    its upstream block is checked inside http { }, where the same directives are valid.
    """
    head = f"load_module {stream_module};\n" if stream_module and mode == "tcp" else ""
    head += (
        f"worker_processes 1;\nerror_log {folder}/error.log;\npid {folder}/nginx.pid;\n"
        "events { worker_connections 64; }\n"
    )
    temp = "".join(
        f"    {kind}_temp_path {folder}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    if mode == "tcp" and stream_module:
        server = f"    server {{ listen 127.0.0.1:8080; proxy_pass {UPSTREAM}; }}\n"
        return head + f"stream {{\n{snippet}\n{server}}}\n"
    server = (
        "    server {\n        listen 127.0.0.1:8080;\n        location / {\n"
        f"            proxy_pass http://{UPSTREAM};\n            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n        }\n    }\n'
    )
    return head + f"http {{\n    access_log off;\n{temp}{snippet}\n{server}}}\n"


def haproxy_config(snippet: str, mode: str) -> str:
    """A whole haproxy.cfg around a backend snippet, for `haproxy -c`."""
    return (
        "global\n    maxconn 256\n\n"
        f"defaults\n    mode {mode}\n    timeout connect 3s\n    timeout client 30s\n"
        "    timeout server 30s\n\n"
        f"frontend lab_in\n    bind 127.0.0.1:8080\n    default_backend {UPSTREAM}\n\n"
        f"{snippet}\n"
    )
