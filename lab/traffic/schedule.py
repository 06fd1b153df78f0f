"""The traffic's whole schedule: when each request falls due, which client sends it, what it asks.

One `Schedule` answers all three, from one seeded rng and the caller's clock,
so the same seed gives the same arrivals, the same clients and the same paths
(a comparison sends this one schedule to both sides, and can be repeated
exactly). Clients take arrivals in turn, c1 first: client `k` here is the
(k+1)-th simulated client, whose source address is 127.0.0.(k+2).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lab.traffic.arrivals import Page, PathMix, PoissonArrivals


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request of the schedule: when it falls due, the client (0-based) and the page."""

    due: float
    client: int
    page: Page


class Schedule:
    """Poisson arrivals, handed to `clients` in turn, each with a page from the mix."""

    def __init__(self, rng: random.Random, clients: int) -> None:
        self.arrivals = PoissonArrivals(rng)
        self.mix = PathMix(rng)
        self.clients = clients
        self.turn = 0  # the next client, 0-based

    def start(self, rate: float, now: float) -> float | None:
        """(Re)start at `rate` from `now`; when the first arrival is due (None: none)."""
        return self.arrivals.start(rate, now)

    def stop(self) -> None:
        self.arrivals.stop()

    @property
    def next_due(self) -> float | None:
        return self.arrivals.next_due

    def due(self, now: float) -> list[Arrival]:
        """Every arrival due by `now`, oldest first."""
        return [self.arrival(due) for due in self.arrivals.due(now)]

    def burst(self, count: int, now: float) -> list[Arrival]:
        """`count` arrivals all due `now` (a learner's "send N")."""
        return [self.arrival(now) for _ in range(count)]

    def arrival(self, due: float) -> Arrival:
        self.turn %= self.clients
        client = self.turn
        self.turn += 1
        return Arrival(due, client, self.mix.pick())

    def resize(self, clients: int) -> None:
        self.clients = clients

    def restart_turns(self) -> None:
        """The next arrival goes to c1 again (after a reset)."""
        self.turn = 0
