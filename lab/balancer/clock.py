"""The balancer's clocks, passed in rather than read from `time`, so that policy
(health, slow start, the queue, the stick table) can be tested by moving time by hand.

`monotonic` measures durations and deadlines; `wall` stamps events for people
(and the page, which lines them up with its own clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    __slots__ = ("monotonic", "wall")

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.monotonic = monotonic
        self.wall = wall
