"""Hashing algorithms: ip-hash (hash mod total weight) and consistent-hash (a ring).

Both use a stable hash (BLAKE2b), never Python's hash(), which is salted per
process: the same client must land on the same backend after a restart.
"""

from __future__ import annotations

import hashlib
import string
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from lab.balancer.algorithms.base import Algorithm, Decision, RequestInfo
from lab.balancer.algorithms.common import weight_of, weights_text
from lab.balancer.backend import Backend

# The accepted forms of the consistent-hash `hash_key` option.
HASH_KEYS = ("client-ip", "path", "header:<name>", "cookie:<name>", "sni")

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_SHOWN_KEY_CHARS = 40


def stable_hash(text: str) -> int:
    """Hash text to a 32-bit number that is the same in every process and on every run."""
    data = text.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "big")


class HashKey(NamedTuple):
    """Which part of a request the consistent hash uses: kind, and a header or cookie name."""

    kind: str  # "client-ip", "path", "header", "cookie" or "sni" (the TLS server name)
    name: str = ""

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


def parse_hash_key(text: object) -> HashKey:
    """Parse a hash_key option such as "header:X-User"; raise ValueError if it is not one."""
    if not isinstance(text, str):
        raise ValueError(f"hash_key must be text, one of: {', '.join(HASH_KEYS)}")
    text = text.strip()
    if text in ("client-ip", "path", "sni"):
        return HashKey(text)
    kind, colon, name = text.partition(":")
    if colon and kind in ("header", "cookie"):
        name = name.strip()
        if name and all(c in _TOKEN_CHARS for c in name):
            return HashKey(kind, name)
        raise ValueError(
            f"bad hash_key {text!r}: a {kind} name must be letters, digits or -_. (like X-User)"
        )
    raise ValueError(f"bad hash_key {text!r}; use one of: {', '.join(HASH_KEYS)}")


def _shown(key: str) -> str:
    if len(key) <= _SHOWN_KEY_CHARS:
        return key
    return key[: _SHOWN_KEY_CHARS - 3] + "..."


class IpHash(Algorithm):
    """Hash the client address, take it modulo the total weight, walk the candidates.

    Stable while the candidates stay the same, but adding or losing one backend
    remaps most clients: that is the lesson consistent-hash answers.
    """

    name = "ip-hash"

    def choose(self, candidates: Sequence[Backend], request: RequestInfo) -> Decision:
        # nginx hashes only the first three octets of an IPv4 address; every lab
        # client is 127.0.0.x, so that would send them all to one backend. We
        # hash the whole address instead.
        total = sum(weight_of(b) for b in candidates)
        slot = stable_hash(request.client) % total
        ticket = slot
        chosen = candidates[-1]
        for backend in candidates:
            ticket -= weight_of(backend)
            if ticket < 0:
                chosen = backend
                break
        reason = f"hash({_shown(request.client)}) mod {total} = {slot} -> {chosen.name}"
        if total != len(candidates):
            reason += f" (weights {weights_text(candidates)})"
        return Decision(chosen, reason)


@dataclass(frozen=True, slots=True)
class Ring:
    """Sorted ring points and, for each, the index of the candidate that owns it."""

    points: list[int]
    owners: list[int]
    names: tuple[str, ...]

    def slot(self, key_hash: int) -> int:
        """Return the index of the first ring point at or after key_hash, wrapping around."""
        i = bisect_left(self.points, key_hash)
        return i if i < len(self.points) else 0

    def share(self) -> dict[str, float]:
        """Return the fraction of the hash space each backend owns, for showing the ring."""
        size = 1 << 32
        owned = dict.fromkeys(self.names, 0)
        previous = self.points[-1] - size
        for point, owner in zip(self.points, self.owners, strict=True):
            owned[self.names[owner]] += point - previous
            previous = point
        return {name: amount / size for name, amount in owned.items()}


class ConsistentHash(Algorithm):
    """A hash ring with virtual nodes (like ketama); the key's next point clockwise wins.

    Each backend puts POINTS_PER_WEIGHT * weight points on the ring, at
    stable_hash("name#i"). Adding a backend to N moves only about 1/(N+1) of the
    keys, all of them to the newcomer. Options: hash_key (see HASH_KEYS).
    """

    name = "consistent-hash"

    POINTS_PER_WEIGHT = 160  # as nginx: 160 ring points per unit of weight
    MAX_RING_WEIGHT = 100  # heavier weights count as this, to bound the ring's size
    MAX_RINGS = 8  # rings cached, one per candidate set (a retry excludes one backend)

    def __init__(self, rng=None, hash_key: object = "client-ip", **options: object) -> None:
        super().__init__(rng, **options)
        self.hash_key = parse_hash_key(hash_key)
        self._lookup_name = self.hash_key.name.lower()  # RequestInfo header names are lower-case
        self.reads_headers = self.hash_key.kind in ("header", "cookie")
        self._rings: OrderedDict[tuple[tuple[str, int], ...], Ring] = OrderedDict()

    def ring(self, candidates: Sequence[Backend]) -> Ring:
        """Return the ring for these candidates, built only when the set or weights change."""
        cache_key = tuple((b.name, weight_of(b)) for b in candidates)
        ring = self._rings.get(cache_key)
        if ring is None:
            ring = self._build(cache_key)
            self._rings[cache_key] = ring
            if len(self._rings) > self.MAX_RINGS:
                self._rings.popitem(last=False)
        else:
            self._rings.move_to_end(cache_key)
        return ring

    def choose(self, candidates: Sequence[Backend], request: RequestInfo) -> Decision:
        ring = self.ring(candidates)
        key, described = self._key(request)
        key_hash = stable_hash(key)
        slot = ring.slot(key_hash)
        chosen = candidates[ring.owners[slot]]
        reason = (
            f"{described} hashes to {key_hash:#010x}; the next ring point, "
            f"{ring.points[slot]:#010x}, is owned by {chosen.name}"
        )
        return Decision(chosen, reason)

    def _key(self, request: RequestInfo) -> tuple[str, str]:
        """Return the key and how to describe it, falling back to the client IP."""
        kind, name = self.hash_key
        value = None
        if kind == "path":
            value = request.path or None
        elif kind == "sni":
            value = request.sni
        elif kind == "header":
            value = (request.headers or {}).get(self._lookup_name)
        elif kind == "cookie":
            value = (request.cookies or {}).get(name)
        if value:
            label = f"{kind} {name}" if name else kind
            return value, f"key {_shown(value)} ({label})"
        client = f"key {_shown(request.client)} (client IP)"
        if kind == "client-ip":
            return request.client, client
        if kind == "path":
            missing = "no path"
        elif kind == "sni":
            missing = "no SNI"
        else:
            missing = f"no {name} {kind}"
        return request.client, f"{missing}, so {client}"

    def _build(self, members: tuple[tuple[str, int], ...]) -> Ring:
        points: list[tuple[int, int]] = []
        for owner, (name, weight) in enumerate(members):
            count = self.POINTS_PER_WEIGHT * min(weight, self.MAX_RING_WEIGHT)
            points.extend((stable_hash(f"{name}#{i}"), owner) for i in range(count))
        points.sort()
        return Ring(
            points=[p for p, _ in points],
            owners=[o for _, o in points],
            names=tuple(name for name, _ in members),
        )
