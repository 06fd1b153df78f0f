"""The UDP flow table: what the balancer remembers instead of connections.

UDP has no connection, so the balancer decides what a session is: a flow, keyed
by the client's address and port. The table keeps flows in order of their last
datagram (either way), oldest first. That one order answers both questions:
- which flows have been idle past the timeout (a walk from the front that stops
  at the first one still live);
- which flow to evict when the table is full (the one at the front).

Pure: no sockets, time from the injected clock. The datagram shell
(lab.balancer.udp_proxy) owns the sockets and hangs them on each Flow.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

from lab.balancer.backend import Backend
from lab.balancer.clock import Clock

# Why a flow ended: the `end` of its done event.
IDLE: Final = "idle"  # no datagram either way for idle_timeout_ms
EVICTED: Final = "evicted"  # the table was full and it was the one idle the longest
BACKEND_DOWN: Final = "backend-down"  # its backend left service; the next datagram moved on
REFUSED: Final = "refused"  # the backend's port was unreachable (ICMP)
ANSWERED: Final = "answered"  # per-datagram mode: the reply came, the exchange is over
RESET: Final = "reset"  # the balancer started afresh (a lesson's start): every flow ends
ENDS: Final = (IDLE, EVICTED, BACKEND_DOWN, REFUSED, ANSWERED, RESET)


class Flow:
    """One client address and port (or, per datagram, one exchange) and its backend."""

    __slots__ = (
        "key", "id", "peer", "client", "backend", "single", "started", "last_seen",
        "datagrams_up", "datagrams_down", "bytes_up", "bytes_down", "upstream", "pending",
        "ended", "sent_at", "broken",
    )  # fmt: skip

    def __init__(
        self, fid: str, peer: tuple, backend: Backend, single: bool = False, started: float = 0.0
    ) -> None:
        # A flow is known by its client's address and port; a single exchange (per-datagram
        # mode) by its own id, so that one client can have many at once.
        self.key: Any = fid if single else peer
        self.id = fid
        self.peer = peer  # the client's (host, port), where replies go
        self.client = f"{peer[0]}:{peer[1]}"  # as events and hashing see it
        self.backend = backend
        self.single = single
        self.started = started  # for the done event's ms (the shell's clock)
        self.last_seen = 0.0  # the table's clock
        self.datagrams_up = 0  # client -> backend
        self.datagrams_down = 0  # backend -> client
        self.bytes_up = 0
        self.bytes_down = 0
        self.upstream: Any = None  # the shell's socket to the backend, once it is open
        self.pending: list[bytes] = []  # datagrams that came before the socket was open
        self.ended = ""  # one of ENDS once over
        self.sent_at = 0.0  # when the last datagram went up, for its round trip
        self.broken = ""  # what went wrong with its backend (ICMP); the next datagram moves

    @property
    def answered(self) -> bool:
        return self.datagrams_down > 0


class FlowTable:
    """Live flows, oldest activity first, bounded by `max_flows`."""

    def __init__(self, clock: Clock, idle_timeout_s: float = 10.0, max_flows: int = 10_000):
        self.clock = clock
        self.idle_timeout_s = idle_timeout_s
        self.max_flows = max_flows
        self.flows: OrderedDict[Any, Flow] = OrderedDict()
        self.evicted = 0  # since start: flows pushed out because the table was full
        self.expired = 0  # since start: flows that ended idle
        self.started = 0  # since start: flows created

    def __len__(self) -> int:
        return len(self.flows)

    def configure(self, idle_timeout_s: float, max_flows: int) -> None:
        """Take new limits; a table now over its bound shrinks at the next add or trim()."""
        self.idle_timeout_s = idle_timeout_s
        self.max_flows = max_flows

    def trim(self) -> list[Flow]:
        """Evict the oldest flows while the table holds more than max_flows."""
        return self._make_room(0)

    def get(self, key: Any) -> Flow | None:
        return self.flows.get(key)

    def touch(self, flow: Flow) -> None:
        """A datagram went through the flow, either way: it is the newest activity."""
        self.touch_at(flow, self.clock.monotonic())

    def touch_at(self, flow: Flow, now: float) -> None:
        """touch, at `now` read from this table's clock by a caller that needed it anyway."""
        flow.last_seen = now
        self.flows.move_to_end(flow.key)

    def add(self, flow: Flow) -> list[Flow]:
        """Remember a new flow; return the flows evicted to make room for it, oldest first."""
        evicted = self._make_room(1)
        flow.last_seen = self.clock.monotonic()
        self.flows[flow.key] = flow
        self.started += 1
        return evicted

    def _make_room(self, wanted: int) -> list[Flow]:
        evicted = []
        while self.flows and len(self.flows) + wanted > self.max_flows:
            _, flow = self.flows.popitem(last=False)
            flow.ended = EVICTED
            evicted.append(flow)
        self.evicted += len(evicted)
        return evicted

    def remove(self, flow: Flow, why: str) -> None:
        """End one flow now (its backend went down, refused, or it was answered)."""
        if self.flows.get(flow.key) is flow:
            del self.flows[flow.key]
        flow.ended = why

    def expire(self) -> list[Flow]:
        """End and return every flow idle for idle_timeout_s or more, oldest first."""
        deadline = self.clock.monotonic() - self.idle_timeout_s
        expired = []
        flows = self.flows
        while flows:
            flow = next(iter(flows.values()))
            if flow.last_seen > deadline:
                break  # every flow after it was active more recently
            del flows[flow.key]
            flow.ended = IDLE
            expired.append(flow)
        self.expired += len(expired)
        return expired

    def on_backend(self, backend: Backend) -> list[Flow]:
        return [flow for flow in self.flows.values() if flow.backend is backend]

    def clear(self) -> list[Flow]:
        flows = list(self.flows.values())
        self.flows.clear()
        return flows


def udp_state(table: FlowTable, counts: dict[str, int]) -> dict:
    """The flow table's numbers for /state: live flows, how flows ended, datagrams."""
    return {
        "flows": len(table),
        "max_flows": table.max_flows,
        "flows_started": table.started,
        "evicted": table.evicted,
        "expired": table.expired,
        **{key: counts[key] for key in sorted(counts)},
    }
