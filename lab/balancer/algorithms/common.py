"""Small helpers the algorithms share: weights, weighted draws, fair ties and reason text."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Final

from lab.balancer.backend import Backend

# A reason lists the other backends' numbers; past this many it says "+N more".
MAX_LISTED: Final = 8


def weight_of(backend: Backend) -> int:
    """Return the weight an algorithm uses (at least 1, so nothing divides by zero)."""
    return backend.weight if backend.weight > 0 else 1


def weights_text(candidates: Sequence[Backend]) -> str:
    """Return the weights as a ratio, such as "5:1:1"."""
    return ":".join(str(weight_of(b)) for b in candidates)


def equal_weights(candidates: Sequence[Backend]) -> bool:
    """Return True when every candidate has the same weight."""
    first = weight_of(candidates[0])
    return all(weight_of(b) == first for b in candidates)


def listing(items: Iterable[str]) -> str:
    """Join items with commas, cut short after MAX_LISTED so a reason stays readable."""
    items = list(items)
    if len(items) <= MAX_LISTED:
        return ", ".join(items)
    return ", ".join(items[:MAX_LISTED]) + f", +{len(items) - MAX_LISTED} more"


def number(value: float) -> str:
    """Format a ratio briefly: 2, 0.5, 0.333."""
    return f"{value:.3g}"


def only_one(backend: Backend) -> str:
    return f"{backend.name} is the only backend to choose from"


def weighted_index(
    rng: random.Random, candidates: Sequence[Backend], total: int, skip: int = -1
) -> int:
    """Draw a candidate index with chance proportional to weight.

    `total` is the sum of the weights of the candidates not skipped.
    """
    ticket = rng.randrange(total)
    for i, backend in enumerate(candidates):
        if i == skip:
            continue
        ticket -= weight_of(backend)
        if ticket < 0:
            return i
    raise AssertionError("total does not match the candidates' weights")


class FairLowest:
    """Find the lowest score; tied candidates take turns in pool order.

    nginx's least_conn hands ties out round robin. Always taking the first tie
    would pile every quiet moment onto b1, so this remembers the last winner and
    gives the next tie after it (wrapping around) the turn.
    """

    def __init__(self) -> None:
        self._last_name: str | None = None
        self._last_pos = -1

    def pick(self, candidates: Sequence[Backend], scores: Sequence[float]) -> tuple[int, int]:
        """Return (index of the winner, how many candidates tied for lowest)."""
        low = min(scores)
        last_pos = self._last_pos - 1  # the last winner left: resume just before its old slot
        ties = []
        for i, score in enumerate(scores):
            if candidates[i].name == self._last_name:
                last_pos = i
            if score == low:
                ties.append(i)
        winner = next((i for i in ties if i > last_pos), ties[0])
        self._last_name = candidates[winner].name
        self._last_pos = winner
        return winner, len(ties)


def per_weight(backend: Backend) -> str:
    """Show active per weight with its arithmetic, such as "3/2 = 1.5"."""
    weight = weight_of(backend)
    return f"{backend.active}/{weight} = {number(backend.active / weight)}"
