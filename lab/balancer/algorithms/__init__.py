"""The algorithm registry: the kebab-case names used everywhere, mapped to strategy classes."""

from __future__ import annotations

import random

from lab.balancer.algorithms.base import Algorithm, Decision, RequestInfo
from lab.balancer.algorithms.hashing import (
    HASH_KEYS,
    ConsistentHash,
    HashKey,
    IpHash,
    parse_hash_key,
)
from lab.balancer.algorithms.least_connections import LeastConnections
from lab.balancer.algorithms.least_response_time import LeastResponseTime
from lab.balancer.algorithms.power_of_two import PowerOfTwoChoices
from lab.balancer.algorithms.random_choice import RandomChoice
from lab.balancer.algorithms.round_robin import RoundRobin

ALGORITHMS: dict[str, type[Algorithm]] = {
    cls.name: cls
    for cls in (
        RoundRobin,
        LeastConnections,
        RandomChoice,
        PowerOfTwoChoices,
        IpHash,
        ConsistentHash,
        LeastResponseTime,
    )
}
ALGORITHM_NAMES: tuple[str, ...] = tuple(ALGORITHMS)

# Options create() accepts. Each is checked for every algorithm, so a config may
# keep hash_key set while switching to an algorithm that does not use it.
OPTION_NAMES = ("hash_key",)


def create(name: str, rng: random.Random | None = None, **options: object) -> Algorithm:
    """Make the algorithm called `name`; raise ValueError on an unknown name or a bad option."""
    cls = ALGORITHMS.get(name)
    if cls is None:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGORITHM_NAMES)}")
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise ValueError(
            f"unknown algorithm option {unknown[0]!r}; known options: {', '.join(OPTION_NAMES)}"
        )
    if "hash_key" in options:
        parse_hash_key(options["hash_key"])
        if cls is not ConsistentHash:
            options = {k: v for k, v in options.items() if k != "hash_key"}
    return cls(rng, **options)


__all__ = [
    "ALGORITHMS",
    "ALGORITHM_NAMES",
    "HASH_KEYS",
    "OPTION_NAMES",
    "Algorithm",
    "ConsistentHash",
    "Decision",
    "HashKey",
    "IpHash",
    "LeastConnections",
    "LeastResponseTime",
    "PowerOfTwoChoices",
    "RandomChoice",
    "RequestInfo",
    "RoundRobin",
    "create",
    "parse_hash_key",
]
