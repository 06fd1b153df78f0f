"""How the lab's simulated clients get their own addresses to the balancer.

Client k is 127.0.0.(k+1), so ip-hash, source stickiness and the lessons about
them see N distinct visitors. On Linux every 127/8 address is on loopback and
each client binds its own. macOS has only 127.0.0.1 there, so the lab does
what a real balancer behind another proxy does instead: each connection
starts with a PROXY protocol header naming the client (lab.proxy_protocol),
and the lab's balancer is told to read it (`proxy_protocol.accept`).
"""

from __future__ import annotations

from lab.address import can_bind
from lab.traffic.clients import source_address

CHOICES = ("auto", "bind", "proxy")


def by_proxy(choice: str) -> bool:
    """Do the clients name their addresses in PROXY headers rather than bind them?"""
    if choice == "auto":
        return not can_bind(source_address(1))
    return choice == "proxy"
