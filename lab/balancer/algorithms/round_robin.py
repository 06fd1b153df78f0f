"""Round robin: smooth weighted round robin, exactly as nginx does it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from lab.balancer.algorithms.base import Algorithm, Decision, RequestInfo
from lab.balancer.algorithms.common import listing, only_one, weights_text
from lab.balancer.backend import Backend

_LOWEST: Final = -(1 << 62)  # below any score (an int: scores are ints)


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
        # "b2 is next in turn (weights 1:1:1)" per name, for one count and weight.
        self._turn_texts: dict[str, str] = {}
        self._turn_count = 0
        self._turn_weight = 0

    def choose(self, candidates: Sequence[Backend], request: RequestInfo) -> Decision:
        # This runs for every request, so it is one plain loop: it updates the scores,
        # finds the top one, and notices whether the weights are all equal, which is
        # what the reason needs to know.
        current = self._current
        total = 0
        chosen = candidates[0]
        best_score = _LOWEST
        first_weight = chosen.weight if chosen.weight > 0 else 1  # weight_of, inlined
        equal = True
        for backend in candidates:
            weight = backend.weight
            if weight < 1:
                weight = 1
            total += weight
            if weight != first_weight:
                equal = False
            name = backend.name
            try:
                score = current[name] + weight
            except KeyError:
                score = weight
            current[name] = score
            if score > best_score:  # strict: a tie goes to the first in pool order
                chosen, best_score = backend, score
        count = len(candidates)
        if equal and count > 1:
            reason = self._turn_texts.get(chosen.name)
            if reason is None or count != self._turn_count or first_weight != self._turn_weight:
                reason = self._turn_text(chosen.name, count, first_weight)
        else:
            reason = self._reason(candidates, chosen, best_score, total)
        current[chosen.name] = best_score - total
        if len(current) > 2 * count + 8:
            self._forget_departed(candidates)
        return Decision(chosen, reason)

    def _turn_text(self, name: str, count: int, weight: int) -> str:
        """Make (and keep) the reason for equal weights; the texts are few and repeat."""
        changed = (count, weight) != (self._turn_count, self._turn_weight)
        if changed or len(self._turn_texts) > 2 * count + 8:  # new weights, or names came and went
            self._turn_count, self._turn_weight = count, weight
            self._turn_texts = {}
        text = f"{name} is next in turn (weights {':'.join([str(weight)] * count)})"
        self._turn_texts[name] = text
        return text

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
