"""Round robin: smooth weighted round robin, exactly as nginx does it."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from lab.balancer.algorithms.base import Algorithm, Decision, RequestInfo
from lab.balancer.algorithms.common import listing, only_one, weight_of, weights_text
from lab.balancer.backend import Backend


class RoundRobin(Algorithm):
    """Each pick, every score grows by its weight; the top score wins and pays back the total.

    Weights 5,1,1 give a a b a c a a: the heavy backend's turns are spread out
    instead of arriving as a burst of five. Equal weights give plain b1 b2 b3 b1.
    """

    name = "round-robin"

    def __init__(self, rng=None, **options: object) -> None:
        super().__init__(rng, **options)
        # Score per backend name. Like nginx, a backend that leaves the candidates
        # keeps its score and resumes from it when it comes back.
        self._current: dict[str, int] = {}

    def choose(self, candidates: Sequence[Backend], request: RequestInfo) -> Decision:
        # This runs for every request, so the loop also notices whether the weights
        # are all equal, which is what the reason needs to know.
        current = self._current
        total = 0
        best = 0
        best_score = 0
        first_weight = weight_of(candidates[0])
        equal = True
        for i, backend in enumerate(candidates):
            weight = backend.weight if backend.weight > 0 else 1
            total += weight
            equal = equal and weight == first_weight
            score = current.get(backend.name, 0) + weight
            current[backend.name] = score
            if i == 0 or score > best_score:  # strict: a tie goes to the first in pool order
                best, best_score = i, score
        chosen = candidates[best]
        if equal and len(candidates) > 1:
            reason = (
                f"{chosen.name} is next in turn ({self._equal_text(len(candidates), first_weight)})"
            )
        else:
            reason = self._reason(candidates, chosen, best_score, total)
        current[chosen.name] = best_score - total
        if len(current) > 2 * len(candidates) + 8:
            self._forget_departed(candidates)
        return Decision(chosen, reason)

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def _equal_text(count: int, weight: int) -> str:
        return "weights " + ":".join([str(weight)] * count)

    def _reason(
        self, candidates: Sequence[Backend], chosen: Backend, score: int, total: int
    ) -> str:
        if len(candidates) == 1:
            return only_one(chosen)
        current = self._current
        others = listing(f"{b.name}: {current[b.name]}" for b in candidates if b is not chosen)
        return (
            f"{chosen.name} has the top score {score} ({others}); scores grow by weight "
            f"{weights_text(candidates)} each pick, and {chosen.name} now drops by {total}"
        )

    def _forget_departed(self, candidates: Sequence[Backend]) -> None:
        """Drop scores of backends long gone, so renamed pools do not grow the table."""
        self._current = {b.name: self._current[b.name] for b in candidates}
