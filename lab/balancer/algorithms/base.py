"""The strategy seam: every algorithm picks one backend and says why."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import ClassVar

from lab.balancer.backend import Backend

# RequestInfo and Decision are made for every request, so they are plain classes
# with their own __init__: a dataclass's generated __init__ would stay interpreted
# Python even where this module is compiled (lab.balancer.compiled).


class RequestInfo:
    """What the balancer knows about a request when it must choose.

    At Layer 4 only `client` is known (and `sni` in TLS passthrough); path, headers and
    cookies are empty.
    Header names are lower-case.
    """

    __slots__ = ("client", "method", "path", "headers", "cookies", "upgrade", "sni")

    def __init__(
        self,
        client: str,
        method: str = "",
        path: str = "",
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        sni: str | None = None,
    ) -> None:
        self.client = client
        self.method = method
        self.path = path
        self.headers = headers
        self.cookies = cookies
        self.upgrade = ""  # "websocket" for a WebSocket handshake (lab.balancer.tunnel)
        self.sni = sni  # the TLS server name (SNI) the client sent, if any

    def __repr__(self) -> str:
        return f"RequestInfo({self.client!r}, {self.method!r}, {self.path!r})"


class Decision:
    """The algorithm's choice and a sentence a learner can read."""

    __slots__ = ("backend", "reason", "sticky")

    def __init__(self, backend: Backend, reason: str, sticky: bool = False) -> None:
        self.backend = backend
        self.reason = reason
        self.sticky = sticky  # chosen because a sticky cookie or source address pinned it

    def __repr__(self) -> str:
        return f"Decision({self.backend.name!r}, {self.reason!r}, sticky={self.sticky})"


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
