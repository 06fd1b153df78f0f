"""The PROXY protocol in the generated configs: read on the listener, sent on to backends.

The lab's `proxy_protocol.accept` is nginx's `listen ... proxy_protocol` with
`set_real_ip_from` (the addresses whose headers are believed) and, at Layer 7,
`real_ip_header proxy_protocol`; HAProxy's `bind ... accept-proxy`. The lab closes
connections from anywhere else; HAProxy says so with a `tcp-request connection
reject`, while nginx reads their header and does not believe it (a comment says so).
`proxy_protocol.send` (Layer 4) is nginx's `proxy_protocol on` (which sends v1 only)
and HAProxy's `send-proxy` / `send-proxy-v2` on each server.
"""

from __future__ import annotations

from lab.balancer.settings import trusted_networks
from lab.lessons.snippet_rules import UPSTREAM


def settings(config: dict) -> tuple[bool, str, list[str]]:
    """(accept, send, trusted networks) from a config or the balancer's /state."""
    table = config.get("proxy_protocol") or {}
    trusted = trusted_networks(table.get("trusted", "127.0.0.0/8, ::1/128"))
    return bool(table.get("accept")), table.get("send", "off"), trusted


def in_use(config: dict) -> bool:
    accept, send, _ = settings(config)
    layer4 = config.get("mode", "http") == "tcp"
    return accept or (layer4 and send != "off")


def nginx_lines(config: dict, snippet: list[str]) -> list[str]:
    """The snippet with the listener that reads (and at Layer 4 sends) PROXY headers."""
    mode = config.get("mode", "http")
    if mode == "udp" or not in_use(config):
        return snippet
    accept, send, trusted = settings(config)
    listen = config.get("listen", "127.0.0.1:8080")
    reading = [f"    set_real_ip_from {network};" for network in trusted] if accept else []
    if accept and mode == "http":
        reading.append("    real_ip_header proxy_protocol;  # $remote_addr: the named client")
    if accept:
        reading.append("    # others' headers are read but not believed (the lab closes them)")
    flags = " proxy_protocol" if accept else ""
    if any(line == f"    listen {listen};" for line in snippet):  # the rules' own server { }
        at = snippet.index(f"    listen {listen};")
        return [*snippet[:at], f"    listen {listen}{flags};", *reading, *snippet[at + 1 :]]
    server = ["# the listener: the client's address from the PROXY header that starts each"]
    server += ["# connection (proxy_protocol.accept)" if accept else "# connection"]
    server += ["server {", f"    listen {listen}{flags};", *reading]
    if mode == "tcp":
        server.append(f"    proxy_pass {UPSTREAM};")
        if send != "off":
            note = "" if send == "v1" else ": nginx sends v1 only (HAProxy: send-proxy-v2)"
            server.append(f"    proxy_protocol on;  # proxy_protocol.send{note}")
    else:
        server += [
            "    location / {",
            f"        proxy_pass http://{UPSTREAM};",
            "        proxy_http_version 1.1;",
            "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "        proxy_set_header Upgrade $http_upgrade;",
            "        proxy_set_header Connection $connection_upgrade;",
            "    }",
        ]
    return [*snippet, *server, "}"]


def haproxy_frontend(config: dict, snippet: list[str]) -> list[str]:
    """The frontend that reads PROXY headers (HAProxy's accept-proxy), when the lab does."""
    accept, _, trusted = settings(config)
    mode = config.get("mode", "http")
    if not accept or mode == "udp":
        return snippet
    listen = config.get("listen", "127.0.0.1:8080")
    reject = f"    tcp-request connection reject unless {{ src {' '.join(trusted)} }}"
    if f"    bind {listen}" in snippet:  # the rules' own frontend
        at = snippet.index(f"    bind {listen}")
        return [*snippet[:at], f"    bind {listen} accept-proxy", reject, *snippet[at + 1 :]]
    frontend = [
        "frontend lab_in  # the client's address from the PROXY header (proxy_protocol.accept)",
        f"    bind {listen} accept-proxy",
        f"    mode {mode}",
        reject,
        f"    default_backend {UPSTREAM}",
        "",
    ]
    return [*frontend, *snippet]


def haproxy_server_option(config: dict) -> str:
    """What each `server` line gains at Layer 4 with proxy_protocol.send."""
    _, send, _ = settings(config)
    if config.get("mode", "http") != "tcp" or send == "off":
        return ""
    return " send-proxy-v2" if send == "v2" else " send-proxy"
