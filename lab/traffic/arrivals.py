"""When requests fall due: an open-loop Poisson schedule, and which path each one asks for.

Open loop means the schedule never waits for answers: a request falls due at
its time whether or not earlier ones came back, so a slow balancer sees
requests pile up, as it would in real life. The gaps between arrivals are
exponential with mean 1/rate (a Poisson process). Both the clock (`now`
arguments) and the chance (`rng`) are passed in, so a test replays a run exactly.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

MAX_LAG_S = 1.0  # a schedule further behind than this (a suspended laptop) starts afresh


class PoissonArrivals:
    """Arrival times at `rate` per second, on whatever clock the caller reads."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rate = 0.0
        self.next_due: float | None = None  # None: nothing scheduled (rate 0 or stopped)

    def start(self, rate: float, now: float) -> float | None:
        """(Re)start at `rate` from `now`; returns when the first arrival is due.

        An exponential gap has no memory, so restarting on a rate change is still
        an exact Poisson process: nothing from the old rate carries over.
        """
        self.rate = rate
        self.next_due = now + self.gap() if rate > 0 else None
        return self.next_due

    def stop(self) -> None:
        self.next_due = None

    def gap(self) -> float:
        return self.rng.expovariate(self.rate)

    def due(self, now: float) -> list[float]:
        """Every arrival due by `now`, oldest first; the schedule moves past them."""
        times: list[float] = []
        if self.next_due is not None and now - self.next_due > MAX_LAG_S:
            self.start(self.rate, now)  # rather than a burst of everything missed
        while self.next_due is not None and self.next_due <= now:
            times.append(self.next_due)
            self.next_due += self.gap()
        return times


@dataclass(frozen=True, slots=True)
class Page:
    """One kind of request in the mix."""

    method: str
    path: str
    weight: int
    body: bytes = b""


# What a small shop's visitors ask for. Fixed, so lessons and tests can rely on it.
PATH_MIX: tuple[Page, ...] = (
    Page("GET", "/", 30),
    Page("GET", "/cart", 15),
    Page("GET", "/api/items", 20),
    Page("GET", "/api/items/42", 15),
    Page("GET", "/static/app.js", 15),
    Page("POST", "/login", 5, b"user=learner&password=lab"),
)


HEAVY_PATH = "/report"  # the expensive page of a mix with heavy requests


def heavy_page(extra_ms: float) -> Page:
    """A report that takes the backend `extra_ms` longer than any other page."""
    return Page("GET", f"{HEAVY_PATH}?delay_ms={extra_ms:g}", 0)


class PathMix:
    """Picks pages by weight with the caller's rng; `heavy_share` of them are a heavy
    report instead. With no heavy share the rng is drawn exactly as before, so a seed
    gives the same pages whether the setting exists or not."""

    def __init__(self, rng: random.Random, pages: tuple[Page, ...] = PATH_MIX) -> None:
        self.rng = rng
        self.pages = pages
        self._cumulative = list(itertools.accumulate(page.weight for page in pages))
        self.heavy_share = 0.0
        self.heavy = heavy_page(0)

    def set_heavy(self, share: float, extra_ms: float) -> None:
        self.heavy_share = share
        self.heavy = heavy_page(extra_ms)

    def pick(self) -> Page:
        if self.heavy_share and self.rng.random() < self.heavy_share:
            return self.heavy
        point = self.rng.random() * self._cumulative[-1]
        return self.pages[bisect.bisect_right(self._cumulative, point)]
