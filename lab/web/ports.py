"""Preferred ports: the lab's usual ports when they are free, any free port when they are not."""

from __future__ import annotations

import socket


def port_or_any(host: str, port: int) -> int:
    """`port` if it is free now, else 0 so the child picks a free one and reports it."""
    with socket.socket() as probe:
        # The children bind with SO_REUSEADDR (asyncio does), so a port whose old
        # connections linger in TIME_WAIT is free for them; probe the same way.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return 0
    return port
