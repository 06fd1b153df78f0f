"""Every response time since the last reset, kept as a histogram: percentiles and a CDF to 1%.

A comparison states p50, p95, p99 and max over all the requests both sides
answered, and draws their whole distribution. Keeping every value and
sorting it 20 times a second would cost the traffic generator its speed, so
values fall into buckets 1% wide (on a log scale, 0.01 ms to 100 s): a
percentile is its bucket's upper edge, never more than 1% above the true
value (and never above the exact maximum, which is kept as is).
"""

from __future__ import annotations

import math

LOW_MS = 0.01
HIGH_MS = 100_000.0
RATIO = 1.01
BUCKETS = math.ceil(math.log(HIGH_MS / LOW_MS) / math.log(RATIO)) + 1
# The quantiles a CDF is drawn through (the page's distribution chart).
CDF_QUANTILES = tuple(q / 100 for q in range(1, 100)) + (0.995, 0.999)


class Distribution:
    """A histogram of response times in ms."""

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        index = 0 if ms <= LOW_MS else min(int(math.log(ms / LOW_MS, RATIO)) + 1, BUCKETS - 1)
        self.counts[index] += 1
        self.count += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def quantiles(self, fractions: tuple[float, ...]) -> list[float | None]:
        """The nearest-rank value at each fraction (ascending), to 1%; None when empty."""
        if not self.count:
            return [None] * len(fractions)
        ranks = [max(math.ceil(f * self.count), 1) for f in fractions]
        found: list[float | None] = []
        seen, index = 0, 0
        for rank in ranks:
            while seen + self.counts[index] < rank:
                seen += self.counts[index]
                index += 1
            edge = LOW_MS * RATIO**index if index < BUCKETS - 1 else self.max_ms  # the open end
            found.append(round(min(edge, self.max_ms), 2))
        return found

    def as_json(self) -> dict:
        p50, p95, p99 = self.quantiles((0.50, 0.95, 0.99))
        return {
            "n": self.count,
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "max": round(self.max_ms, 2) if self.count else None,
            "cdf": self.quantiles(CDF_QUANTILES) if self.count else [],
        }
