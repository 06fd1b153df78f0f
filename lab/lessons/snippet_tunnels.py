"""WebSocket tunnels as nginx and HAProxy write them (the lab's are in lab.balancer.tunnel).

The lab's Layer 7 balancer passes every WebSocket handshake on and turns a 101
answer into a tunnel. HAProxy does that by itself in `mode http`; nginx only
when told, because Upgrade and Connection are hop-by-hop headers it drops:
HTTP/1.1 to the upstream, the client's Upgrade, and a Connection header made
from it by a `map` (nginx.org, "WebSocket proxying"). The map gives an empty
value to requests without Upgrade, so they carry no Connection header at all
and `keepalive` still reuses upstream connections for them.

A silent tunnel ends after timeouts.tunnel_idle_ms: HAProxy's `timeout tunnel`.
nginx has no timeout of its own for tunnels: it ends one when the backend says
nothing for `proxy_read_timeout`, the same directive that bounds a slow answer
(the lab's backend_response_ms), so the snippet gives WebSocket paths a
location of their own for it.
"""

from __future__ import annotations

from lab.balancer.settings import TimeoutSettings
from lab.lessons.snippet_rules import time_text

TUNNEL_IDLE_MS = TimeoutSettings().tunnel_idle_ms  # the lab's default: one hour
CONNECTION_VARIABLE = "$connection_upgrade"
# The lines a location with proxy_set_header lines of its own must repeat (snippet_rules).
NGINX_HEADERS = (
    "proxy_set_header Upgrade $http_upgrade;",
    f"proxy_set_header Connection {CONNECTION_VARIABLE};",
)


def _tunnel_idle_ms(config: dict) -> int:
    return int((config.get("timeouts") or {}).get("tunnel_idle_ms", TUNNEL_IDLE_MS))


def nginx_tunnels(config: dict) -> list[str]:
    """The http { } lines that make nginx pass WebSockets on (Layer 7 only)."""
    lines = [
        "# WebSockets: Upgrade and Connection are hop-by-hop, so nginx passes them on when told",
        f"map $http_upgrade {CONNECTION_VARIABLE} {{",
        "    default upgrade;",
        '    ""      "";  # no Upgrade: no Connection header, and keepalive reuses connections',
        "}",
        "proxy_http_version 1.1;",
        *NGINX_HEADERS,
        "# (a location with proxy_set_header lines of its own must repeat them)",
    ]
    idle = _tunnel_idle_ms(config)
    if idle != TUNNEL_IDLE_MS:
        lines += [
            f"# a silent tunnel ends after {time_text(idle)} (the lab's tunnel_idle_ms); nginx "
            "ends one after",
            "# proxy_read_timeout, which also bounds a slow answer: a WebSocket path's own "
            "location sets it",
            f"# location /ws/ {{ proxy_pass http://lab; proxy_read_timeout {time_text(idle)}; }}",
        ]
    return lines


def haproxy_tunnels(config: dict) -> list[str]:
    """The backend section's line for tunnels, when the lab's idle limit is not its default."""
    idle = _tunnel_idle_ms(config)
    if idle == TUNNEL_IDLE_MS:
        return []
    return [f"    timeout tunnel {time_text(idle)}  # a silent WebSocket ends (tunnel_idle_ms)"]
