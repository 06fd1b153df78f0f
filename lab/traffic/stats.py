"""What the traffic generator counts: requests sent, answered by status class (or, for UDP
datagrams, `reply`), failed, in flight, and latency percentiles over a sliding window.

Pure: the caller passes the clock reading in, so a test can drive time by hand.
"""

from __future__ import annotations

import math
from collections import Counter, deque

from lab.traffic.distribution import Distribution

WINDOW_S = 10.0  # p50/p95 describe the last ten seconds: recent enough to follow a knob
MAX_SAMPLES = 50_000  # at the top rate the window holds this many; older ones go first
# handshake: a TLS handshake failed (the certificate did not verify, say)
FAILURE_KINDS = ("connect", "handshake", "reset", "timeout", "bad_response")
STATUS_CLASSES = ("2xx", "4xx", "5xx")  # always reported; 1xx and 3xx only once seen


class TrafficStats:
    def __init__(self) -> None:
        self.in_flight = 0  # a gauge, not a counter: a reset leaves it alone
        self.reset()

    def reset(self) -> None:
        self.sent = 0
        self.completed = 0
        self.status: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self._latencies: deque[tuple[float, float]] = deque(maxlen=MAX_SAMPLES)
        self.distribution = Distribution()  # every answer since the reset (a comparison's)
        self.handshakes = 0  # TLS handshakes done, full or resumed
        self.resumed = 0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def started(self) -> None:
        self.sent += 1
        self.in_flight += 1

    def answered(self, status: int, ms: float, now: float) -> None:
        self.in_flight -= 1
        self.completed += 1
        self.status[f"{status // 100}xx"] += 1
        self._latencies.append((now, ms))
        self.distribution.add(ms)

    def replied(self, ms: float, now: float) -> None:
        """A datagram's reply came: UDP has no status, so it is counted as a `reply`."""
        self.in_flight -= 1
        self.completed += 1
        self.status["reply"] += 1
        self._latencies.append((now, ms))

    def handshake(self, resumed: bool) -> None:
        """A TLS connection is up; `resumed`: its session was resumed, not a full handshake."""
        self.handshakes += 1
        self.resumed += resumed

    def failed_with(self, kind: str) -> None:
        self.in_flight -= 1
        self.failures[kind] += 1

    def percentiles(self, now: float) -> dict[str, float | None]:
        """p50 and p95 in ms over the last WINDOW_S seconds (None before any answer)."""
        window = self._latencies
        while window and window[0][0] < now - WINDOW_S:
            window.popleft()
        ordered = sorted(ms for _, ms in window)
        return {"p50": _nearest_rank(ordered, 0.50), "p95": _nearest_rank(ordered, 0.95)}

    def as_json(self) -> dict:
        status = {name: self.status[name] for name in STATUS_CLASSES}
        status.update((name, n) for name, n in sorted(self.status.items()) if name not in status)
        return {
            "sent": self.sent,
            "completed": self.completed,
            "failed": self.failed,
            "in_flight": self.in_flight,
            "status": status,
            "failures": {kind: self.failures[kind] for kind in FAILURE_KINDS},
            "tls": {"handshakes": self.handshakes, "resumed": self.resumed},
        }

    def summary(self, now: float) -> str:
        """One line for the terminal when the run ends."""
        latency = self.percentiles(now)
        line = f"traffic: sent {self.sent}, completed {self.completed}, failed {self.failed}"
        if self.in_flight:
            line += f", {self.in_flight} unanswered"
        return line + f"; p50 {_ms(latency['p50'])}, p95 {_ms(latency['p95'])}"


def _nearest_rank(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)], 2)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"
