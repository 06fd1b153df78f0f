"""Who a toy backend was told its clients are: the TCP peer, a PROXY header, X-Forwarded-For.

Behind a balancer a backend's TCP peer is the balancer. It learns the client's
address only if the balancer tells it: in a PROXY header at the start of the
connection (Layer 4, `proxy_protocol.send`), or in X-Forwarded-For on each
request (Layer 7). `ClientsSeen` counts the served requests by each address
each way, so a lesson can check what a backend could know (GET /_lab/state's
`clients`):

    "clients": {"peer": {"127.0.0.1": 6},
                "proxy_protocol": {"127.0.0.2": 3, "127.0.0.3": 3},
                "forwarded_for": {}}

X-Forwarded-For counts its first address, the original client as the first
proxy wrote it. (A real backend believes that only through proxies it trusts:
nginx's `set_real_ip_from` with `real_ip_recursive on` walks the list from
the right and stops at the first address it does not trust.) Each table keeps
at most MAX_ADDRESSES addresses; requests from further ones are counted under
OTHERS, so a flood of made-up addresses cannot grow the process.
"""

from __future__ import annotations

from typing import Final

MAX_ADDRESSES: Final = 256
OTHERS: Final = "others"
WAYS: Final = ("peer", "proxy_protocol", "forwarded_for")


class ClientsSeen:
    """Served requests by client address, per way the backend learned it."""

    def __init__(self) -> None:
        self.peer: dict[str, int] = {}
        self.proxy_protocol: dict[str, int] = {}
        self.forwarded_for: dict[str, int] = {}

    def record(self, peer: str, proxy_client: str | None, forwarded_for: str | None) -> None:
        """Count one served request: its peer, the client a PROXY header named, and the
        X-Forwarded-For header as it came (None for each one that did not)."""
        _count(self.peer, peer)
        if proxy_client is not None:
            _count(self.proxy_protocol, proxy_client)
        if forwarded_for is not None:
            _count(self.forwarded_for, forwarded_for.partition(",")[0].strip())

    def reset(self) -> None:
        self.peer.clear()
        self.proxy_protocol.clear()
        self.forwarded_for.clear()

    def as_json(self) -> dict[str, dict[str, int]]:
        return {way: dict(getattr(self, way)) for way in WAYS}


def _count(table: dict[str, int], address: str) -> None:
    if address not in table and len(table) >= MAX_ADDRESSES:
        address = OTHERS
    table[address] = table.get(address, 0) + 1
