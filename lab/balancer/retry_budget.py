"""The retry budget: retries may add at most a share of the traffic, so they cannot storm.

Retries on a slow or overloaded fleet multiply its load (each failed try is one
more request to a server that is already behind). A budget caps them, as
Linkerd's and Finagle's do: over the last `TTL_S` seconds, retries may number at
most `budget_percent` % of the requests, plus `min_per_s` a second whatever the
traffic (so that a quiet service can still retry at all). Envoy's
`retry_budget` caps retries in flight instead (`budget_percent` of the active
requests, at least `min_retry_concurrency`); a window of counts is easier to
watch and to test. A retry the budget refuses is answered as the failure it is.

Counts are kept in one-second buckets on the caller's clock.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from lab.balancer.clock import Clock

TTL_S: Final = 10  # seconds of history, Linkerd's default ttl


class RetryBudget:
    """Requests and retries of the last TTL_S seconds; `allow` spends one retry or says why not."""

    def __init__(self, clock: Clock, budget_percent: float = 0.0, min_per_s: float = 10.0) -> None:
        self.clock = clock
        self.percent = budget_percent
        self.min_per_s = min_per_s
        # (second, requests, retries), oldest first
        self._buckets: deque[list[int]] = deque()

    def configure(self, budget_percent: float, min_per_s: float) -> None:
        self.percent = budget_percent
        self.min_per_s = min_per_s

    @property
    def on(self) -> bool:
        return self.percent > 0

    def request(self) -> None:
        """A new request arrived (its first try): it earns the budget a share of a retry."""
        if self.on:
            self._now_bucket()[1] += 1

    def allow(self) -> str:
        """Spend one retry: "" when the budget has room for it, else why not."""
        if not self.on:
            return ""
        bucket = self._now_bucket()
        requests = sum(b[1] for b in self._buckets)
        retries = sum(b[2] for b in self._buckets)
        allowed = self.percent / 100 * requests + self.min_per_s * TTL_S
        if retries + 1 > allowed:
            return (
                f"the retry budget is spent: {retries} retries in the last {TTL_S} s, and "
                f"{self.percent:g}% of {requests} requests + {self.min_per_s:g}/s allows "
                f"{allowed:.0f}"
            )
        bucket[2] += 1
        return ""

    def reset(self) -> None:
        self._buckets.clear()

    def _now_bucket(self) -> list[int]:
        second = int(self.clock.monotonic())
        buckets = self._buckets
        while buckets and buckets[0][0] <= second - TTL_S:
            buckets.popleft()
        if not buckets or buckets[-1][0] != second:
            buckets.append([second, 0, 0])
        return buckets[-1]
