"""A pool: a group of backends and the algorithm that picks among them.

The pool decides who may take new traffic before the algorithm sees anyone:
healthy primaries, else healthy backups, else (in panic mode) everyone. Then
it leaves out backends at their max_conns and, now and then, backends still
warming up in slow start. What remains goes to the algorithm.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Collection

from lab.balancer.algorithms import Algorithm, Decision, RequestInfo, create
from lab.balancer.backend import Backend


class Refusal:
    """No backend for this request, and why. `can_wait` means every candidate is at
    max_conns: the request may wait in the pool's queue for a free slot.
    `tried_all` means every candidate was tried for this request and failed."""

    __slots__ = ("reason", "can_wait", "tried_all")

    def __init__(self, reason: str, can_wait: bool = False, tried_all: bool = False) -> None:
        self.reason = reason
        self.can_wait = can_wait
        self.tried_all = tried_all

    def __repr__(self) -> str:
        return f"Refusal({self.reason!r}, can_wait={self.can_wait}, tried_all={self.tried_all})"


class Pool:
    def __init__(
        self, name: str, members: list[Backend], algorithm: str, hash_key: str, rng: random.Random
    ) -> None:
        self.name = name
        self.rng = rng
        self.members = members
        self.by_name = {b.name: b for b in members}
        self.hash_key = hash_key
        self.algorithm: Algorithm = create(algorithm, rng=rng, hash_key=hash_key)
        self.queue: deque = deque()  # requests waiting for a max_conns slot, oldest first
        self.candidates: list[Backend] = []
        self.note = ""  # what the learner should know about this pool's state, or ""
        self.panic = False
        self._limited = False  # some candidate has max_conns
        self._warming = False  # some candidate is in slow start
        self.panic_threshold = 0

    def set_members(self, members: list[Backend]) -> None:
        self.members = members
        self.by_name = {b.name: b for b in members}

    def refresh(self) -> None:
        """Recompute who may take new traffic (after any health, drain or member change)."""
        primaries = [b for b in self.members if not b.backup]
        live = [b for b in primaries if b.healthy and not b.draining]
        backups = [b for b in self.members if b.backup and b.healthy and not b.draining]
        threshold = self.panic_threshold
        share = 100.0 * len(live) / len(primaries) if primaries else 100.0
        self.panic = False
        self.note = ""
        if live and share >= threshold:
            self.candidates = live
        elif backups and not live:
            self.candidates = backups
            down = ", ".join(b.name for b in primaries) or "none"
            self.note = f"backup in use, because every primary is down ({down})"
        elif threshold and primaries and share < threshold:
            self.candidates = [b for b in primaries if not b.draining]
            self.panic = bool(self.candidates)
            self.note = (
                f"panic mode: only {len(live)} of {len(primaries)} backends healthy "
                f"(under {threshold}%), so every backend gets traffic, healthy or not"
            )
        else:
            self.candidates = live
        self._limited = any(b.max_conns for b in self.candidates)
        self._warming = any(b.warm_fraction < 1.0 for b in self.candidates)

    def choose(self, request: RequestInfo, exclude: Collection[Backend] = ()) -> Decision | Refusal:
        candidates = self.candidates
        if exclude:
            candidates = [b for b in candidates if b not in exclude]
        if not candidates:
            return Refusal(self.empty_reason(tried=bool(exclude)), tried_all=bool(exclude))
        if self._limited:
            room = [b for b in candidates if not b.max_conns or b.active < b.max_conns]
            if not room:
                full = ", ".join(f"{b.name} {b.active}/{b.max_conns}" for b in candidates)
                return Refusal(f"every backend is at max_conns ({full})", can_wait=True)
            candidates = room
        left_out = ""
        if self._warming and len(candidates) > 1:
            candidates, left_out = self._admit_warming(candidates)
        decision = self.algorithm.choose(candidates, request)
        if left_out:
            decision.reason += f" ({left_out})"
        if self.note:
            decision.reason = f"{self.note}; {decision.reason}"
        return decision

    def _admit_warming(self, candidates: list[Backend]) -> tuple[list[Backend], str]:
        """Slow start: a warming backend joins each pick with a chance equal to its ramp.

        Scaling only its weight is not enough: under least-connections a cold
        backend has 0 active and would win every pick (the trap Caddy and Envoy
        users hit). Letting it sit out part of the picks works for every algorithm.
        """
        admitted = []
        sat_out = []
        for backend in candidates:
            if backend.warm_fraction >= 1.0 or self.rng.random() < backend.warm_fraction:
                admitted.append(backend)
            else:
                sat_out.append(backend)
        if not admitted or not sat_out:
            return candidates, ""
        words = ", ".join(f"{b.name} at {b.warm_fraction:.0%}" for b in sat_out)
        return admitted, f"warming up in slow start, so it sat out this pick: {words}"

    def empty_reason(self, tried: bool = False) -> str:
        where = "" if self.name == "default" else f" in pool {self.name}"
        if tried:
            return f"every backend{where} failed this request"
        if not self.members:
            return f"no healthy backend{where}: it has no backends at all"
        states = ", ".join(f"{b.name} {b.state}" for b in self.members)
        return f"no healthy backend{where} ({states})"
