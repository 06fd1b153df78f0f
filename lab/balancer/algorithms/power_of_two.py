"""Power of two choices: draw two backends at random, send to the less loaded one."""

from __future__ import annotations

from collections.abc import Sequence

from lab.balancer.algorithms.base import Algorithm, Decision, RequestInfo
from lab.balancer.algorithms.common import number, only_one, per_weight, weight_of, weighted_index
from lab.balancer.backend import Backend


class PowerOfTwoChoices(Algorithm):
    """Draw two distinct backends, each draw weighted; the lower active/weight wins.

    This is nginx's `random two least_conn`: the draws favour heavy backends and
    the comparison uses active/weight. On a tie the first drawn wins. Going from
    one random choice to two keeps the busiest backend far closer to the
    average, without every balancer herding onto one "least loaded" server.
    """

    name = "power-of-two-choices"

    def choose(self, candidates: Sequence[Backend], request: RequestInfo) -> Decision:
        if len(candidates) == 1:
            return Decision(candidates[0], only_one(candidates[0]))
        total = sum(weight_of(b) for b in candidates)
        i = weighted_index(self.rng, candidates, total)
        first = candidates[i]
        second = candidates[weighted_index(self.rng, candidates, total - weight_of(first), skip=i)]
        load_1 = first.active / weight_of(first)
        load_2 = second.active / weight_of(second)
        chosen, other = (second, first) if load_2 < load_1 else (first, second)
        drew = f"drew {first.name} and {second.name}"
        if load_1 == load_2:
            if weight_of(first) == weight_of(second):
                both = f"both have {first.active} active"
            else:
                both = f"both have {number(load_1)} active per weight"
            return Decision(chosen, f"{drew}; {both}, so the first drawn, {first.name}, wins")
        if weight_of(first) == weight_of(second):
            return Decision(
                chosen,
                f"{drew}; {chosen.name} has fewer active ({chosen.active} vs {other.active})",
            )
        return Decision(
            chosen,
            f"{drew}; {chosen.name} has less active per weight "
            f"({per_weight(chosen)} vs {per_weight(other)})",
        )
