"""The balancer's shared state: backends, pools and rules, sticky table, events and counters.

The Layer 4 and Layer 7 front ends both route through `route()` and report
through the `publish_*` helpers, so both modes tell the same story. Health
(lab.balancer.health) and the request queue (lab.balancer.queue) change who may
be chosen; this module only asks them. How a new config reaches the backends and
pools is lab.balancer.reconfigure; what GET /state shows of it all, lab.balancer.snapshot.
"""

from __future__ import annotations

import random
import ssl
from collections import Counter, defaultdict
from collections.abc import Callable, Collection

from lab.balancer.algorithms import Decision, RequestInfo
from lab.balancer.backend import Backend
from lab.balancer.clock import Clock
from lab.balancer.config import BalancerConfig, ConfigError, apply_update, format_address
from lab.balancer.event_text import micros_text, millis_text, route_extras
from lab.balancer.events import EventBus, JsonTexts
from lab.balancer.flows import FlowTable
from lab.balancer.health import Health
from lab.balancer.pool import Pool, Refusal
from lab.balancer.queue import RequestQueue
from lab.balancer.reconfigure import build_pools, sync_backends
from lab.balancer.retry_budget import RetryBudget
from lab.balancer.rules import Rule, match
from lab.balancer.settings import trusted_networks
from lab.balancer.sticky import Sticky
from lab.balancer.tls_context import contexts_for
from lab.balancer.upstream import UpstreamPool
from lab.proxy_protocol import TrustedSources
from lab.vocabulary.events import CONFIG, DRAIN, ERROR


class Balancer:
    def __init__(self, config: BalancerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock = clock or Clock()
        # The hot path's two clocks, as plain attributes: one call each, no lookups.
        self.monotonic = clock.monotonic
        self.wall_clock = clock.wall
        self.rng = random.Random(config.seed)
        self.upstreams = UpstreamPool()
        self.events = EventBus(limit=config.events_queue)
        self.errors: Counter[str] = Counter()  # by status we answered, or "retry", "refused"
        self.listen_address = format_address(config.listen)
        self.admin_address = format_address(config.admin)
        self._last_id = 0  # request ids are r1, r2, ...
        self._time_at = 0.0  # see event_time
        self._time_text = ""
        self.texts = JsonTexts()  # reasons and paths, escaped for events
        self.backends: dict[str, Backend] = {}
        self.pools: dict[str, Pool] = {}
        self.default_pool: Pool
        self.rules: tuple[Rule, ...] = ()
        self.reads_headers = False  # does routing need the request's headers decoded?
        self.health = Health(
            lambda: self.backends.values(), self.events.publish, self.health_changed, clock
        )
        self.queue = RequestQueue(lambda: self.pools.values(), self.events.publish, clock)
        self.retry_budget = RetryBudget(clock)
        self.sticky = Sticky(clock)
        # mode udp: the flow table and its counters (datagrams, drops, how flows ended).
        # The datagram shell (lab.balancer.udp_proxy) ends flows; `end_flows` is its hook
        # for a fresh start, when every live flow belongs to backends that are gone.
        self.flows = FlowTable(clock)
        # A defaultdict, not a Counter: Counter's Python-level methods made each `+= 1` from
        # compiled code a method lookup (about 1.9k instructions per UDP exchange, callgrind).
        self.udp_counts: defaultdict[str, int] = defaultdict(int)
        self.end_flows: Callable[[], None] = _nothing
        self.udp_per_datagram = False
        self.udp_unavailable = ""  # why the daemon could not open its UDP port, if it could not
        self.tls_context: ssl.SSLContext | None = None  # set while tls.mode is terminate
        self._apply(config, changes=None)

    # -- routing -------------------------------------------------------------------------

    def next_id(self) -> str:
        self._last_id += 1
        return f"r{self._last_id}"

    def choose_pool(self, request: RequestInfo) -> tuple[Pool, Rule | None]:
        """The first rule that matches names the pool; otherwise the default pool."""
        rule = match(self.rules, request) if self.rules else None
        if rule is None:
            return self.default_pool, None
        return self.pools[rule.pool], rule

    def route(
        self, request: RequestInfo, exclude: Collection[Backend] = (), pool: Pool | None = None
    ) -> Decision | Refusal:
        pool = pool or self.default_pool
        if self.sticky.mode != "off":
            outcome = self.sticky.choose(pool, request, exclude)
        else:
            outcome = pool.choose(request, exclude)
        if isinstance(outcome, Decision):
            backend = outcome.backend
            backend.active += 1
            backend.total += 1
        return outcome

    def release(
        self,
        backend: Backend,
        ms: float | None,
        failed: bool = False,
        why: str = "",
        http_error: bool = False,
    ) -> None:
        """A request (L7) or connection (L4) on `backend` has ended.

        `failed` counts against the backend; `why` says what went wrong for passive
        health, which ignores an `http_error` (a 5xx) unless told to count them.
        """
        backend.active -= 1
        if failed:
            backend.failures += 1
            if not http_error or self.config.passive.on_5xx:
                self.health.saw_failure(backend, why or "a failed request")
        elif ms is not None:
            backend.observe_latency(ms, self.monotonic())
        if backend.draining and not backend.active:
            self.publish_drain(backend, f"{backend.name} finished its last request: drained")
        if self.queue.waiting:
            self.queue.slot_freed()

    def tick(self) -> None:
        """A few times a second: fading response times, health timers, queue timeouts."""
        now = self.monotonic()
        for backend in self.backends.values():
            backend.fade(now)
        self.health.tick(now)
        if self.queue.waiting:
            self.queue.tick(now)

    def refresh(self) -> None:
        """Recompute every pool's candidates after a health, drain or weight change."""
        for pool in self.pools.values():
            pool.refresh()

    def health_changed(self, backend: Backend | None) -> None:
        """Health changed `backend`'s verdict (None: only slow start moved on)."""
        self.refresh()
        if backend is None:
            return
        if not backend.healthy:
            self.upstreams.forget(backend)  # its idle connections are likely dead too
        elif self.queue.waiting:
            self.queue.slot_freed()

    # -- draining ------------------------------------------------------------------------

    def set_draining(self, backend: Backend, draining: bool) -> None:
        if backend.draining == draining:
            return
        backend.draining = draining
        if not draining:
            self.health.back_in_service(backend)
        self.refresh()
        if draining:
            self.upstreams.forget(backend)  # idle keep-alive connections: nothing more to carry
            if backend.active:
                self.publish_drain(
                    backend,
                    f"{backend.name} is draining: no new requests; "
                    f"{backend.active} in flight will finish",
                )
            else:
                self.publish_drain(backend, f"{backend.name} had nothing in flight: drained")
        else:
            self.publish_drain(backend, f"{backend.name} takes new requests again")

    # -- events --------------------------------------------------------------------------

    # Route and done events happen for every request, so they are written as JSON text
    # directly, with f-strings: several times cheaper than encoding a dict. Text that
    # can hold anything (path, reason) is escaped (see JsonTexts). The method is a
    # token llhttp has already checked, the client an address from the kernel, and
    # names and ids are validated or ours: none of them can hold a quote or a backslash.

    def event_time(self) -> str:
        """Return the wall-clock time for an event, as JSON text (seconds, 6 decimals).

        Printing a float costs more than the rest of an event line, so, like nginx's
        cached time, the text is made once per millisecond and shared by the events
        in it: a `t` is never more than 1 ms early.
        """
        now = self.wall_clock()
        if not 0.0 <= now - self._time_at < 0.001:
            self._time_at = now
            self._time_text = micros_text(now)
        return self._time_text

    def publish_route(
        self,
        rid: str,
        request: RequestInfo,
        decision: Decision,
        retry: int = 0,
        pool: Pool | None = None,
        rule: Rule | None = None,
        tls: str = "",
    ) -> None:
        """`tls`: the event's tls field as JSON text (",\"tls\":{...}"), made once a connection."""
        if not self.events.listening:
            return
        pool = pool or self.default_pool
        texts = self.texts
        more = ""
        if request.method:
            more = f',"method":"{request.method}","path":{texts.of(request.path)}'
        named = pool is not self.default_pool
        if retry or rule is not None or decision.sticky or named or request.upgrade:
            more += route_extras(retry, pool, rule, decision.sticky, named, request.upgrade)
        if tls:  # the `tls` field, already JSON text (event_text.passthrough_tls)
            more += tls
        self.events.publish_encoded(
            f'{{"type":"route","id":"{rid}","t":{self.event_time()},"mode":"{self.mode}",'
            f'"client":"{request.client}","backend":"{decision.backend.name}",'
            f'"algorithm":"{pool.algorithm.name}","reason":{texts.of(decision.reason)}{more}}}'
        )

    def publish_done(
        self, rid: str, backend: Backend, status: int | None, ms: float, sent: int, received: int
    ) -> None:
        if not self.events.listening:
            return
        self.events.publish_encoded(
            f'{{"type":"done","id":"{rid}","t":{self.event_time()},"backend":"{backend.name}",'
            f'"status":{status or "null"},"ms":{millis_text(ms)},"bytes":{sent},'
            f'"bytes_up":{received}}}'
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
                "type": ERROR,
                "id": rid,
                "t": self.wall_clock(),
                "status": status,
                "reason": reason,
            }
            if backend is not None:
                event["backend"] = backend.name
            self.events.publish(event)

    def publish_drain(self, backend: Backend, reason: str) -> None:
        self.events.publish(
            {
                "type": DRAIN,
                "t": self.wall_clock(),
                "backend": backend.name,
                "state": backend.state,
                "active": backend.active,
                "reason": reason,
            }
        )

    # -- admin ---------------------------------------------------------------------------

    def update(self, update: object, fresh: bool = False) -> dict:
        """Apply a validated partial config; raises ConfigError before changing anything.

        `fresh` then builds every backend and pool anew, as a balancer just started
        with that config would have them: no response times, turn order, stick table or
        health verdicts carried over (a lesson's start), in one change and one event.
        """
        new, changes = apply_update(self.config, update)
        if new.mode == "udp" and self.udp_unavailable:
            raise ConfigError("mode", f"mode udp is unavailable: {self.udp_unavailable}")
        if fresh:
            changes["fresh"] = True
        if changes:
            self._apply(new, changes, fresh)
            self.events.publish({"type": CONFIG, "t": self.wall_clock(), "changes": changes})
        return changes

    def _apply(self, new: BalancerConfig, changes: dict | None, fresh: bool = False) -> None:
        """Make the live objects match `new`; backends that keep name and address keep state."""
        self.config = new  # the listener reads config.mode for each new connection
        # Copies the hot path reads for every request, as plain attributes: the config
        # is a frozen dataclass, and each step into it is a lookup.
        self.mode = new.mode
        self.client_header_s = new.timeouts.client_header_ms / 1000
        self.connect_s = new.timeouts.connect_ms / 1000  # Layer 4, once per connection
        self.idle_s = new.timeouts.idle_ms / 1000
        self.backend_response_s = new.timeouts.backend_response_ms / 1000
        self.proxy_accept = new.proxy_protocol.accept  # read once per new connection
        self.proxy_trusted = TrustedSources(trusted_networks(new.proxy_protocol.trusted))
        self.proxy_send = new.proxy_protocol.send
        self.passthrough = new.tls.mode == "passthrough"  # read the ClientHello, route on SNI
        self.no_sni_pool = new.tls.no_sni_pool
        self.udp_per_datagram = new.udp.per_datagram
        tls = contexts_for(new.tls)  # checked already: built then, and kept
        if tls.upstream is not self.upstreams.context:  # idle ones speak the old way
            self.upstreams.close_idle()
            self.upstreams.context = tls.upstream
        self.tls_context = tls.server  # read once per new connection (lab.balancer.daemon)
        self.flows.configure(new.udp.idle_timeout_ms / 1000, new.udp.max_flows)
        self.health.use_settings(new)  # slow start applies to backends added just below
        self.queue.configure(new.max_queue, new.timeouts.queue_ms)
        self.retry_budget.configure(new.retries.budget_percent, new.retries.min_per_s)
        if changes is None or fresh or "backends" in changes:
            sync_backends(self, new, fresh)
        structure = ("backends", "pools", "rules", "algorithm", "hash_key", "panic_threshold")
        if changes is None or fresh or any(key in changes for key in structure):
            build_pools(self, new, fresh)
        if fresh:
            self.sticky.table.clear()
            self.end_flows()
            if new.seed is not None:  # the dice from the start too: a run replays the same
                self.rng.seed(new.seed)
        self.rules = new.rules
        self.sticky.configure(new.sticky)
        self.reads_headers = (
            bool(self.rules)
            or self.sticky.cookie is not None
            or any(pool.algorithm.reads_headers for pool in self.pools.values())
        )
        self.health.configure(new)

    def reset_counters(self) -> None:
        for backend in self.backends.values():
            backend.reset_counters()
        self.errors.clear()
        self.udp_counts.clear()
        self.retry_budget.reset()  # a fresh count: the retries it allows start from here too


def _nothing() -> None:
    pass
