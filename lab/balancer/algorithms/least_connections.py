"""Least connections: the fewest requests in flight per unit of weight wins."""

from __future__ import annotations

from collections.abc import Sequence

from lab.balancer.algorithms.base import Algorithm, Decision, RequestInfo
from lab.balancer.algorithms.common import (
    FairLowest,
    equal_weights,
    listing,
    only_one,
    per_weight,
    weight_of,
)
from lab.balancer.backend import Backend


class LeastConnections(Algorithm):
    """Pick the lowest active/weight, as nginx's least_conn does.

    Ties take turns (nginx hands ties out round robin), so an idle pool is not
    all sent to b1. Whole connection counts cannot match fractional weights
    exactly, so the split follows the weights only roughly.
    """

    name = "least-connections"

    def __init__(self, rng=None, **options: object) -> None:
        super().__init__(rng, **options)
        self._ties = FairLowest()

    def choose(self, candidates: Sequence[Backend], request: RequestInfo) -> Decision:
        scores = [b.active / weight_of(b) for b in candidates]
        winner, tied = self._ties.pick(candidates, scores)
        chosen = candidates[winner]
        if len(candidates) == 1:
            return Decision(chosen, only_one(chosen))
        if equal_weights(candidates):
            others = listing(f"{b.name}: {b.active}" for b in candidates if b is not chosen)
            reason = f"{chosen.name} has {chosen.active} active ({others})"
        else:
            others = listing(f"{b.name}: {per_weight(b)}" for b in candidates if b is not chosen)
            reason = f"{chosen.name} has {per_weight(chosen)} active per weight ({others})"
        if tied > 1:
            reason += f"; {tied} tied, so they take turns"
        return Decision(chosen, reason)
