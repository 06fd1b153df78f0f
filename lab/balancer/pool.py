"""A pool: the backends, the algorithm that picks among them, and the live numbers both share."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection

from lab.balancer.algorithms import Algorithm, Decision, RequestInfo, create
from lab.balancer.backend import Backend
from lab.balancer.config import BackendSpec


class Pool:
    def __init__(
        self,
        specs: tuple[BackendSpec, ...],
        algorithm: str,
        hash_key: str,
        rng: random.Random,
        on_removed: Callable[[Backend], None] | None = None,
    ) -> None:
        self.rng = rng
        self.backends: dict[str, Backend] = {}
        self.on_removed = on_removed
        self.algorithm: Algorithm = create(algorithm, rng=rng, hash_key=hash_key)
        self._candidates: list[Backend] = []
        self.sync(specs)

    def set_algorithm(self, name: str, hash_key: str) -> None:
        """Swap the strategy; backends keep their active counts and history."""
        self.algorithm = create(name, rng=self.rng, hash_key=hash_key)

    def sync(self, specs: tuple[BackendSpec, ...]) -> None:
        """Make the pool match `specs`; a backend keeping its name and address keeps its state."""
        old = self.backends
        new: dict[str, Backend] = {}
        for spec in specs:
            backend = old.get(spec.name)
            if backend is None or (backend.host, backend.port) != (spec.host, spec.port):
                backend = Backend(spec.name, spec.host, spec.port, spec.weight)
            backend.weight = spec.weight
            new[spec.name] = backend
        for name, backend in old.items():
            if new.get(name) is not backend and self.on_removed:
                self.on_removed(backend)
        self.backends = new
        self.refresh()

    def refresh(self) -> None:
        """Recompute who may take new traffic (call after any health change)."""
        self._candidates = [b for b in self.backends.values() if b.healthy]

    def choose(self, request: RequestInfo, exclude: Collection[Backend] = ()) -> Decision | None:
        candidates = self._candidates
        if exclude:
            candidates = [b for b in candidates if b not in exclude]
        if not candidates:
            return None
        return self.algorithm.choose(candidates, request)

    def snapshot(self) -> list[dict]:
        return [b.snapshot() for b in self.backends.values()]
