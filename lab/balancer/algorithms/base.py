"""The strategy seam: every algorithm picks one backend and says why."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from lab.balancer.backend import Backend


@dataclass(slots=True)
class RequestInfo:
    """What the balancer knows about a request when it must choose.

    At Layer 4 only `client` is known; path, headers and cookies are empty.
    Header names are lower-case.
    """

    client: str
    method: str = ""
    path: str = ""
    headers: dict[str, str] | None = None
    cookies: dict[str, str] | None = None


@dataclass(slots=True)
class Decision:
    """The algorithm's choice and a sentence a learner can read."""

    backend: Backend
    reason: str
    sticky: bool = False  # chosen because a sticky cookie or source address pinned it


class Algorithm:
    """Base class: subclasses set `name` and implement `choose`.

    `candidates` is never empty (the caller handles "no healthy backend") and
    lists backends in pool order. Algorithms keep only their own bookkeeping
    (a cursor, a ring); live numbers come from the Backend objects.
    """

    name: ClassVar[str] = ""
    # True when choose() reads request.headers or request.cookies; the proxy skips
    # decoding them for every other algorithm.
    reads_headers: bool = False

    def __init__(self, rng: random.Random | None = None, **options: object) -> None:
        self.rng = rng or random.Random()

    def choose(self, candidates: Sequence[Backend], request: RequestInfo) -> Decision:
        raise NotImplementedError
