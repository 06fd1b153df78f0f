"""Least response time: peak EWMA of response time, scaled by the requests in flight."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from lab.balancer.algorithms.base import Algorithm, Decision, RequestInfo
from lab.balancer.algorithms.common import FairLowest, listing, only_one
from lab.balancer.backend import Backend

# The cost of a backend that has a request out but no answer yet: more than any
# measured backend can cost (about 30 years in ms), so it waits for that answer.
# Finagle's peak EWMA does the same with its own large penalty.
WAITING_PENALTY: Final = 1e12


class LeastResponseTime(Algorithm):
    """Pick the lowest ewma_ms * (active + 1), the cost Finagle's peak EWMA balancer uses.

    The `+ 1` counts the request being placed, so a fast but busy backend can
    lose to a slower idle one. A backend with no response yet is tried first,
    with one request, which is how a new or restarted backend gets measured;
    until that answer is back it costs WAITING_PENALTY (plus its pending count),
    so a cold backend does not take every request before anyone knows its speed.
    Weights are not used. Ties take turns, as in least connections.
    """

    name = "least-response-time"

    def __init__(self, rng=None, **options: object) -> None:
        super().__init__(rng, **options)
        self._ties = FairLowest()

    def choose(self, candidates: Sequence[Backend], request: RequestInfo) -> Decision:
        scores = [_score(b) for b in candidates]
        winner, tied = self._ties.pick(candidates, scores)
        chosen = candidates[winner]
        if len(candidates) == 1:
            return Decision(chosen, only_one(chosen))
        others = listing(
            f"{b.name}: {_cost(b, score)}"
            for b, score in zip(candidates, scores, strict=True)
            if b is not chosen
        )
        if chosen.ewma_ms != 0.0:
            reason = f"{chosen.name} scores {_cost(chosen, scores[winner])} ({others})"
        elif chosen.active == 0:
            reason = f"{chosen.name} has no response time yet, so it is tried first ({others})"
        elif all(b.ewma_ms == 0.0 for b in candidates):
            reason = (
                f"{chosen.name} has no response time yet either, and the fewest pending "
                f"({chosen.active}) ({others})"
            )
        else:
            reason = f"{chosen.name} waits for its first answer, but the rest cost more ({others})"
        if tied > 1:
            reason += f"; {tied} tied, so they take turns"
        return Decision(chosen, reason)


def _score(backend: Backend) -> float:
    if backend.ewma_ms == 0.0 and backend.active:
        return WAITING_PENALTY + backend.active
    return backend.ewma_ms * (backend.active + 1)


def _cost(backend: Backend, score: float) -> str:
    if backend.ewma_ms == 0.0:
        if backend.active:
            return f"waits for its first answer ({backend.active} pending)"
        return "no sample yet"
    return f"{backend.ewma_ms:.1f} ms x {backend.active + 1} = {score:.1f}"
