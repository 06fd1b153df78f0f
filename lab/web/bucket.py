"""A token bucket per connection: bounds how fast one browser may send commands.

A burst of `capacity` commands passes at once, then `rate` a second. A flood
gets clear refusals; the lab, and every other connection, carry on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

RATE = 20.0  # commands a second, sustained: far above what a hand on a page sends
CAPACITY = 40.0


@dataclass
class Buckets:
    rate: float = RATE
    capacity: float = CAPACITY
    clock: Callable[[], float] = time.monotonic
    _level: dict[str, tuple[float, float]] = field(default_factory=dict)  # sid -> (tokens, at)

    def take(self, sid: str) -> bool:
        """May this connection send one more command now?"""
        now = self.clock()
        tokens, at = self._level.get(sid, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        self._level[sid] = (tokens - 1.0 if allowed else tokens, now)
        return allowed

    def forget(self, sid: str) -> None:
        """The connection closed: drop its bucket."""
        self._level.pop(sid, None)

    def refusal(self) -> str:
        return f"too many commands from this page: at most {self.rate:g} a second; try again"
