"""A backend as the balancer sees it: address, weight and the live numbers algorithms read."""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from math import exp
from typing import Final

# Seconds over which a response time fades out of the peak EWMA (Finagle uses 10 s;
# a shorter window lets a learner see the lab react within a few seconds).
EWMA_DECAY_S: Final = 5.0

# Upper bounds (ms) of the latency histogram buckets in /metrics.
LATENCY_BUCKETS_MS: Final = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
# The same bounds as floats: a float compares faster with a float than with an int.
_BUCKET_BOUNDS: Final = tuple(float(bound) for bound in LATENCY_BUCKETS_MS)


@dataclass(eq=False, slots=True)
class Backend:
    """One upstream server and the shared state every algorithm reads.

    The pool owns these numbers, not the algorithms, so switching algorithm
    mid-run keeps in-flight counts and response-time history.
    """

    name: str
    host: str
    port: int
    weight: int = 1
    backup: bool = False  # takes traffic only while every primary is down
    max_conns: int = 0  # 0 = no limit
    # `healthy` is what routing reads: the active checks are passing, and passive
    # health has not taken it out. Health keeps it in step (see lab.balancer.health).
    healthy: bool = True
    passing: bool = True  # the active checks' verdict (always True while checks are off)
    ejected_until: float = 0.0  # passive health: out of service until this clock time
    down_reason: str = ""  # why it is down, for the card and /state
    draining: bool = False  # no new traffic; in-flight requests finish
    warm_since: float = 0.0  # slow start began at this clock time (0: not warming)
    warm_fraction: float = 1.0  # the share of its weight it takes during slow start
    checks_ok: int = 0  # active checks in a row that passed...
    checks_failed: int = 0  # ...or failed
    recent_failures: deque = field(default_factory=deque)  # clock times, for passive health
    active: int = 0  # requests (L7) or connections (L4) in flight now
    total: int = 0  # requests or connections routed here since start or reset
    failures: int = 0  # connect errors, resets and 5xx answers seen on real traffic
    datagrams: int = 0  # mode udp: datagrams from clients forwarded here
    ewma_ms: float = 0.0  # peak EWMA of response time; 0 until the first response
    ewma_at: float = 0.0  # clock time of the last EWMA update
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    latency_sum_ms: float = 0.0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def observe_latency(self, ms: float, now: float) -> None:
        """Fold one response time into the peak EWMA and the histogram.

        Peak EWMA jumps straight up to a slow sample and decays slowly down,
        so one slow answer is noticed at once but one fast answer does not
        make a struggling backend look healthy.
        """
        # This runs for every response: plain local arithmetic, no max(), float bounds.
        ewma = self.ewma_ms
        if ms > ewma or self.ewma_at == 0.0:
            self.ewma_ms = ms
        else:
            elapsed = now - self.ewma_at
            keep = exp(-elapsed / EWMA_DECAY_S) if elapsed > 0.0 else 1.0
            self.ewma_ms = ewma * keep + ms * (1.0 - keep)
        self.ewma_at = now
        self.latency_sum_ms += ms
        self.latency_buckets[bisect_left(_BUCKET_BOUNDS, ms)] += 1

    def fade(self, now: float, idle_s: float = 1.0) -> None:
        """Let an old response time fade while no new ones arrive.

        Without this, a backend that was slow once would keep its score forever
        under least-response-time, because it gets no traffic to prove otherwise.
        Fading lets the balancer probe it again after a while.
        """
        if self.ewma_ms and now - self.ewma_at >= idle_s:
            self.ewma_ms *= exp(-(now - self.ewma_at) / EWMA_DECAY_S)
            self.ewma_at = now

    def reset_counters(self) -> None:
        self.total = 0
        self.failures = 0
        self.datagrams = 0
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.latency_sum_ms = 0.0

    @property
    def state(self) -> str:
        """One word for the card: up, warming, down, draining or drained."""
        if self.draining:
            return "draining" if self.active else "drained"
        if not self.healthy:
            return "down"
        return "warming" if self.warm_fraction < 1.0 else "up"

    def snapshot(self) -> dict:
        return {
            "name": self.name,
            "address": self.address,
            "weight": self.weight,
            "effective_weight": round(self.weight * self.warm_fraction, 3),
            "backup": self.backup,
            "max_conns": self.max_conns,
            "state": self.state,
            "healthy": self.healthy,
            "draining": self.draining,
            "reason": self.down_reason,
            "active": self.active,
            "total": self.total,
            "failures": self.failures,
            "datagrams": self.datagrams,
            "ewma_ms": round(self.ewma_ms, 3),
        }
