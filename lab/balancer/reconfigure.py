"""Config application: how a new config reaches the live backends and pools.

A change keeps what it can, so a lesson that turns one knob does not reset the
rest: a backend that keeps its name and address keeps its state (response times,
health, counters), and a pool whose algorithm did not change keeps its turn
order. A fresh config (`fresh`) builds everything anew, as at start.
Balancer._apply calls these when the backends, or what shapes the pools, changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.balancer.backend import Backend
from lab.balancer.config import BalancerConfig
from lab.balancer.pool import Pool
from lab.balancer.rules import DEFAULT_POOL

if TYPE_CHECKING:
    from lab.balancer.balancer import Balancer


def sync_backends(self: Balancer, new: BalancerConfig, fresh: bool = False) -> None:
    """Backends that keep name and address keep their state; the others start anew."""
    old = self.backends
    kept = {} if fresh else old  # fresh: every backend is new, as at start
    backends: dict[str, Backend] = {}
    for spec in new.backends:
        backend = kept.get(spec.name)
        if backend is None or (backend.host, backend.port) != (spec.host, spec.port):
            backend = Backend(spec.name, spec.host, spec.port)
            if kept:  # a backend added to a running balancer warms up, as one coming back
                self.health.back_in_service(backend)
        backend.weight, backend.backup, backend.max_conns = (
            spec.weight, spec.backup, spec.max_conns,
        )  # fmt: skip
        backends[spec.name] = backend
    for name, backend in old.items():
        if backends.get(name) is not backend:
            self.upstreams.forget(backend)
    self.backends = backends


def build_pools(self: Balancer, new: BalancerConfig, fresh: bool = False) -> None:
    """Pools keep their algorithm object (and its turn order) when nothing about it changed,
    unless `fresh`. A pool's waiting requests stay with the pool of that name."""
    old = self.pools
    specs = {pool.name: pool for pool in new.pools}
    pools: dict[str, Pool] = {}
    names = [DEFAULT_POOL] + [name for name in specs if name != DEFAULT_POOL]
    for name in names:
        spec = specs.get(name)
        members = (
            [self.backends[m] for m in spec.backends]
            if spec is not None
            else list(self.backends.values())
        )
        algorithm = (spec and spec.algorithm) or new.algorithm
        hash_key = (spec and spec.hash_key) or new.hash_key
        pool = old.get(name)
        if pool is None or fresh or (pool.algorithm.name, pool.hash_key) != (algorithm, hash_key):
            queue = pool.queue if pool is not None else None
            pool = Pool(name, members, algorithm, hash_key, self.rng)
            if queue:
                pool.queue = queue
        else:
            pool.set_members(members)
        pool.panic_threshold = new.panic_threshold
        pool.refresh()
        pools[name] = pool
    for name, pool in old.items():
        if name not in pools and pool.queue:
            self.queue.refuse_all(pool, f"pool {name} was removed")
    self.pools = pools
    self.default_pool = pools[DEFAULT_POOL]
