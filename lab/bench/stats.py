"""The benchmark's vocabulary: one run's outcome, and the maths that summarise many runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

THROUGHPUT = "throughput"  # closed loop: C connections, each as fast as the target answers
LATENCY = "latency"  # open loop: a fixed request rate, latency measured per request


@dataclass(slots=True)
class Sample:
    """One run of one load tool against one target."""

    target: str
    phase: str  # THROUGHPUT or LATENCY
    tool: str  # "wrk", "hey" or "builtin": the numbers are only as good as the tool
    requests: int
    errors: int  # non-2xx answers plus socket errors
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    round: int = 0
    events: int | None = None  # lines an /events subscriber read during the run (lb-lab only)
    cpu_s: float | None = None  # CPU time the target's process spent during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_request(self) -> float | None:
        """The target's own cost: steadier than req/s when neighbours steal the CPU."""
        if self.cpu_s is None or not self.requests:
            return None
        return self.cpu_s / self.requests * 1e6

    @property
    def cpu_percent(self) -> float | None:
        """100 means the target kept one core busy: it, not the rest, set the pace."""
        if self.cpu_s is None or self.seconds <= 0:
            return None
        return self.cpu_s / self.seconds * 100

    def to_json(self) -> dict:
        cost, busy = self.cpu_us_per_request, self.cpu_percent
        return dict(
            asdict(self),
            rps=round(self.rps, 1),
            cpu_us_per_request=None if cost is None else round(cost, 1),
            cpu_percent=None if busy is None else round(busy, 1),
        )


@dataclass(slots=True)
class Summary:
    """The median of one target's samples in one phase, across rounds."""

    target: str
    phase: str
    tool: str
    rounds: int
    rps: float
    rps_min: float
    rps_max: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    events: int | None = None
    cpu_us_per_request: float | None = None
    cpu_percent: float | None = None
    per_round: dict[int, Sample] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        data = asdict(self)
        del data["per_round"]
        return {
            key: round(value, 3) if isinstance(value, float) else value
            for key, value in data.items()
        }


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, interpolating between closest ranks."""
    if not ordered:
        return 0.0
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_percentiles(seconds: Sequence[float]) -> tuple[float, float, float]:
    """p50, p90 and p99 in milliseconds of unsorted latencies in seconds."""
    ordered = sorted(seconds)
    return tuple(percentile(ordered, q) * 1000 for q in (50, 90, 99))  # type: ignore[return-value]


def summarise(samples: Sequence[Sample]) -> Summary:
    """Median per figure across rounds: one slow round on a noisy machine moves it little."""
    first = samples[0]
    rates = [s.rps for s in samples]
    events = [s.events for s in samples if s.events is not None]
    costs = [s.cpu_us_per_request for s in samples if s.cpu_us_per_request is not None]
    busy = [s.cpu_percent for s in samples if s.cpu_percent is not None]
    return Summary(
        target=first.target,
        phase=first.phase,
        tool=first.tool,
        rounds=len(samples),
        rps=statistics.median(rates),
        rps_min=min(rates),
        rps_max=max(rates),
        p50_ms=statistics.median(s.p50_ms for s in samples),
        p90_ms=statistics.median(s.p90_ms for s in samples),
        p99_ms=statistics.median(s.p99_ms for s in samples),
        errors=sum(s.errors for s in samples),
        events=sum(events) if events else None,
        cpu_us_per_request=statistics.median(costs) if costs else None,
        cpu_percent=statistics.median(busy) if busy else None,
        per_round={s.round: s for s in samples},
    )
