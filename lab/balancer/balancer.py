"""The balancer's shared state: config, pool, upstream connections, event stream and counters.

The Layer 4 and Layer 7 front ends both route through `route()` and report
through the `publish_*` helpers, so both modes tell the same story.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Collection
from json.encoder import encode_basestring as _text

from lab.balancer.algorithms import Decision, RequestInfo
from lab.balancer.backend import Backend
from lab.balancer.config import BalancerConfig, apply_update, format_address
from lab.balancer.events import EventBus
from lab.balancer.pool import Pool
from lab.balancer.upstream import UpstreamPool

CONNECT_TIMEOUT_S = 3.0
ROUTE_EVENT = (
    '{"type":"route","id":"%s","t":%.6f,"mode":"%s","client":"%s","backend":"%s",'
    '"algorithm":"%s","reason":%s'
)
ROUTE_HTTP = ',"method":"%s","path":%s'
DONE_EVENT = (
    '{"type":"done","id":"%s","t":%.6f,"backend":"%s","status":%s,"ms":%.3f,'
    '"bytes":%d,"bytes_up":%d}'
)


class Balancer:
    def __init__(self, config: BalancerConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.upstreams = UpstreamPool()
        self.pool = Pool(
            config.backends,
            config.algorithm,
            config.hash_key,
            self.rng,
            on_removed=self.upstreams.forget,
        )
        self.events = EventBus(limit=config.events_queue)
        self.errors: Counter[str] = Counter()  # by status we answered, or "retry", "refused"
        self.listen_address = format_address(config.listen)
        self.admin_address = format_address(config.admin)
        self._ids = itertools.count(1)

    # -- routing -------------------------------------------------------------------------

    def next_id(self) -> str:
        return f"r{next(self._ids)}"

    def route(self, request: RequestInfo, exclude: Collection[Backend] = ()) -> Decision | None:
        decision = self.pool.choose(request, exclude)
        if decision is not None:
            backend = decision.backend
            backend.active += 1
            backend.total += 1
        return decision

    def release(self, backend: Backend, ms: float | None, failed: bool = False) -> None:
        """A request (L7) or connection (L4) on `backend` has ended."""
        backend.active -= 1
        if failed:
            backend.failures += 1
        elif ms is not None:
            backend.observe_latency(ms, time.monotonic())

    def tick(self) -> None:
        """Once a second: let idle backends' response times fade (see Backend.fade)."""
        now = time.monotonic()
        for backend in self.pool.backends.values():
            backend.fade(now)

    # -- events --------------------------------------------------------------------------

    # Route and done events happen for every request, so they are written as JSON text
    # directly, with %-formatting (the cheapest way Python has to print a float):
    # several times cheaper than encoding a dict. Text that can hold anything (path,
    # reason) is escaped. The method is a token llhttp has already checked, the client
    # an address from the kernel, and names and ids are validated or ours: none of
    # them can hold a quote or a backslash.

    def publish_route(
        self, rid: str, request: RequestInfo, decision: Decision, retry: int = 0
    ) -> None:
        if not self.events.listening:
            return
        line = ROUTE_EVENT % (
            rid, time.time(), self.config.mode, request.client, decision.backend.name,
            self.pool.algorithm.name, _text(decision.reason),
        )  # fmt: skip
        if request.method:
            line += ROUTE_HTTP % (request.method, _text(request.path))
        if retry:
            line += f',"retry":{retry}'
        self.events.publish_encoded(line + "}")

    def publish_done(
        self, rid: str, backend: Backend, status: int | None, ms: float, sent: int, received: int
    ) -> None:
        if not self.events.listening:
            return
        self.events.publish_encoded(
            DONE_EVENT % (rid, time.time(), backend.name, status or "null", ms, sent, received)
        )

    def publish_error(
        self,
        rid: str,
        status: int | None,
        reason: str,
        backend: Backend | None = None,
        kind: str = "",
    ) -> None:
        """Count and report a request that went wrong; `kind` labels it in /metrics."""
        self.errors[kind or str(status)] += 1
        if self.events.listening:
            event = {
                "type": "error",
                "id": rid,
                "t": time.time(),
                "status": status,
                "reason": reason,
            }
            if backend is not None:
                event["backend"] = backend.name
            self.events.publish(event)

    # -- admin ---------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "mode": self.config.mode,
            "listen": self.listen_address,
            "admin": self.admin_address,
            "algorithm": self.pool.algorithm.name,
            "hash_key": self.config.hash_key,
            "backends": self.pool.snapshot(),
            "errors": dict(self.errors),
            "events": {
                "subscribers": len(self.events.subscribers),
                "published": self.events.published,
                "dropped": self.events.dropped,
            },
        }

    def update(self, update: object) -> dict:
        """Apply a validated partial config; raises ConfigError before changing anything."""
        new, changes = apply_update(self.config, update)
        self.config = new  # the listener reads config.mode for each new connection
        if "backends" in changes:
            self.pool.sync(new.backends)
        if "algorithm" in changes or "hash_key" in changes:
            self.pool.set_algorithm(new.algorithm, new.hash_key)
        if changes:
            self.events.publish({"type": "config", "t": time.time(), "changes": changes})
        return changes

    def reset_counters(self) -> None:
        for backend in self.pool.backends.values():
            backend.reset_counters()
        self.errors.clear()
