"""Random: a weighted random pick, drawn from the algorithm's own seeded generator."""

from __future__ import annotations

from collections.abc import Sequence

from lab.balancer.algorithms.base import Algorithm, Decision, RequestInfo
from lab.balancer.algorithms.common import (
    equal_weights,
    only_one,
    weight_of,
    weighted_index,
    weights_text,
)
from lab.balancer.backend import Backend


class RandomChoice(Algorithm):
    """Pick a backend at random, each with chance weight/total."""

    name = "random"

    def choose(self, candidates: Sequence[Backend], request: RequestInfo) -> Decision:
        total = sum(weight_of(b) for b in candidates)
        chosen = candidates[weighted_index(self.rng, candidates, total)]
        if len(candidates) == 1:
            return Decision(chosen, only_one(chosen))
        chance = f"{weight_of(chosen) / total:.0%}"
        if equal_weights(candidates):
            reason = f"random pick among {len(candidates)} ({chosen.name} had a {chance} chance)"
        else:
            reason = (
                f"random pick, weighted {weights_text(candidates)} "
                f"({chosen.name} had a {chance} chance)"
            )
        return Decision(chosen, reason)
