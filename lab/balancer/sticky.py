"""Sticky sessions: the same client keeps going to the same backend.

Cookie mode is HAProxy's `cookie SERVERID insert indirect nocache`: the first
response sets a cookie naming the backend, later requests carrying it go
there, and the cookie is taken out of requests before they reach a backend.
Source mode is a stick table keyed by client address (`stick on src`), kept
for `expire_s` after a client's last request.

Either way a pin is a preference, not a promise: when the pinned backend is
down, draining, full or gone, the pool chooses again and the pin moves.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from typing import TYPE_CHECKING, Final

from lab.balancer.algorithms import Decision, RequestInfo
from lab.balancer.backend import Backend
from lab.balancer.clock import Clock
from lab.balancer.settings import StickySettings

if TYPE_CHECKING:
    from lab.balancer.pool import Pool, Refusal

# Client addresses remembered in source mode; the least recent are dropped first.
TABLE_LIMIT: Final = 100_000


class Sticky:
    def __init__(self, clock: Clock, limit: int = TABLE_LIMIT) -> None:
        self.clock = clock  # a pin in source mode lasts expire_s after the client's last request
        self.mode = "off"  # or "cookie" or "source", as sticky.mode in the settings
        self.cookie: str | None = None  # the cookie's name in cookie mode
        self.expire_s = 0.0
        self.table: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self.limit = limit  # client addresses kept in source mode

    def configure(self, settings: StickySettings) -> None:
        self.mode = settings.mode
        self.cookie = settings.cookie if settings.mode == "cookie" else None
        self.expire_s = settings.expire_s
        if self.mode != "source":
            self.table.clear()

    def pinned(self, request: RequestInfo) -> str | None:
        if self.cookie is not None:
            return (request.cookies or {}).get(self.cookie)
        entry = self.table.get(request.client)
        if entry is None:
            return None
        if entry[1] < self.clock.monotonic():
            del self.table[request.client]
            return None
        return entry[0]

    def choose(
        self, pool: Pool, request: RequestInfo, exclude: Collection[Backend]
    ) -> Decision | Refusal:
        name = self.pinned(request)
        how = f"sticky cookie {self.cookie}={name}" if self.cookie else "the stick table"
        if name is not None:
            backend = pool.by_name.get(name)
            if backend is not None and _usable(backend, pool, exclude):
                self._remember(request.client, name)
                return Decision(backend, f"{how} pins this client to {name}", sticky=True)
            why = (
                f"{name} is not in pool {pool.name}"
                if backend is None
                else f"{name} is {_unusable_state(backend, exclude)}"
            )
        outcome = pool.choose(request, exclude)
        if isinstance(outcome, Decision):
            chosen = outcome.backend.name
            self._remember(request.client, chosen)
            if name is not None:
                outcome.reason = f"{how} pointed at {name}, but {why}; chose again: " + (
                    outcome.reason
                )
            outcome.reason += (
                f"; the response sets cookie {self.cookie}={chosen}"
                if self.cookie
                else f"; {request.client} now sticks to {chosen}"
            )
        return outcome

    def _remember(self, client: str, name: str) -> None:
        if self.mode != "source":
            return
        table = self.table
        table[client] = (name, self.clock.monotonic() + self.expire_s)
        table.move_to_end(client)
        if len(table) > self.limit:
            table.popitem(last=False)


def _usable(backend: Backend, pool: Pool, exclude: Collection[Backend]) -> bool:
    return (
        backend in pool.candidates
        and backend not in exclude
        and (not backend.max_conns or backend.active < backend.max_conns)
    )


def _unusable_state(backend: Backend, exclude: Collection[Backend]) -> str:
    if backend in exclude:
        return "failing this request"
    if backend.max_conns and backend.active >= backend.max_conns:
        return f"full ({backend.active}/{backend.max_conns})"
    if backend.state == "up":
        return "a backup, used only while every primary is down" if backend.backup else "idle"
    return backend.state
