"""Health: who is fit for traffic. Active checks probe, passive health watches real traffic.

Active checks (HAProxy's `check inter rise fall`): every interval each backend
gets a real probe: an HTTP GET of a path (2xx or 3xx passes), a bare TCP
connect, or (mode udp) a probe datagram that must be answered in time. `fall`
failures in a row take it down, `rise` passes in a row bring it back. The
streaks are the hysteresis: one lost probe does not flap a backend.

Passive health (nginx's `max_fails` and `fail_timeout`): `max_fails` failures
seen on real requests within `fail_timeout_s` take a backend out for
`fail_timeout_s`; then it gets traffic again.

A backend back in service (either way, or added while running) ramps up over
`slow_start_s` (see Pool._admit_warming). Every change is a `health` event with
a reason, and every probe a `check` event, so a learner can watch both happen.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Collection

from lab.balancer.backend import Backend
from lab.balancer.clock import Clock
from lab.balancer.config import BalancerConfig
from lab.balancer.settings import HealthSettings, PassiveSettings
from lab.balancer.tls_context import contexts_for, tls_failure
from lab.balancer.udp_check import udp_probe
from lab.vocabulary.events import CHECK, HEALTH

SLOW_START_FLOOR = 0.05  # a warming backend takes at least this share of its picks


class Health:
    """Keeps each backend's `healthy` in step with both verdicts.

    It sees the backends through `backends` (the set changes with the config),
    reports through `publish`, and calls `changed(backend)` after a backend's
    health changed, or `changed(None)` when only slow start moved on, so that
    the pools can recompute their candidates.
    """

    def __init__(
        self,
        backends: Callable[[], Collection[Backend]],
        publish: Callable[[dict], None],
        changed: Callable[[Backend | None], None],
        clock: Clock,
    ) -> None:
        self.backends = backends
        self.publish = publish
        self.changed = changed
        self.clock = clock
        self.settings: HealthSettings | None = None  # while active checks run
        self.check_type = "http"
        self.passive = PassiveSettings()
        self.slow_start_s = 0.0
        self.config: BalancerConfig | None = None
        self.tasks: dict[Backend, asyncio.Task] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tls: ssl.SSLContext | None = None  # tls.upstream's context, for http checks

    # -- configuration -------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """The daemon is running: checks can begin."""
        self.loop = loop
        if self.config is not None:
            self.configure(self.config)

    def use_settings(self, config: BalancerConfig) -> None:
        """Take the passive health and slow start settings (before backends change)."""
        self.passive = config.passive
        self.slow_start_s = config.slow_start_s

    def configure(self, config: BalancerConfig) -> None:
        """Take every setting and start or stop the active checks to match."""
        self.config = config
        self.use_settings(config)
        settings = config.health if config.health.enabled else None
        check_type = config.health.type or config.mode
        # tls.upstream: backends serve TLS, so an http check speaks it too (HAProxy's check-ssl)
        tls = contexts_for(config.tls).upstream if check_type == "http" else None
        restart = settings != self.settings or check_type != self.check_type or tls is not self.tls
        self.settings, self.check_type, self.tls = settings, check_type, tls
        backends = set(self.backends())
        for backend in list(self.tasks):
            if restart or backend not in backends:
                self.tasks.pop(backend).cancel()
        if settings is None:
            self._forget_active_verdicts()
            return
        if self.loop is None:
            return  # start() comes back here once the loop runs
        for backend in backends:
            if backend not in self.tasks:
                self.tasks[backend] = self.loop.create_task(self._watch(backend))

    def _forget_active_verdicts(self) -> None:
        """Checks turned off: nobody is down on their word any more."""
        for backend in self.backends():
            backend.checks_ok = backend.checks_failed = 0
            if not backend.passing:
                backend.passing = True
                self._update(backend, "active health checks turned off", "active")

    def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()

    # -- active checks -------------------------------------------------------------------

    async def _watch(self, backend: Backend) -> None:
        settings = self.settings
        while True:
            ok, detail, ms = await self.probe(backend)
            self.publish(
                {
                    "type": CHECK,
                    "t": self.clock.wall(),
                    "backend": backend.name,
                    "ok": ok,
                    "ms": round(ms, 3),
                    "detail": detail,
                }
            )
            self.record(backend, ok, detail)
            await asyncio.sleep(settings.interval_ms / 1000)

    async def probe(self, backend: Backend) -> tuple[bool, str, float]:
        """One real check: (passed, what happened, milliseconds)."""
        settings = self.settings
        started = time.perf_counter()
        limit_ms = min(settings.timeout_ms, settings.interval_ms)
        timeout = limit_ms / 1000
        writer = None
        try:
            async with asyncio.timeout(timeout):
                if self.check_type == "udp":
                    ok, detail = await udp_probe(
                        backend.host, backend.port, settings.udp_send, settings.udp_expect
                    )
                    return ok, detail, (time.perf_counter() - started) * 1000
                if self.tls is None:
                    reader, writer = await asyncio.open_connection(backend.host, backend.port)
                else:
                    reader, writer = await asyncio.open_connection(
                        backend.host, backend.port, ssl=self.tls, server_hostname=backend.host
                    )
                if self.check_type == "tcp":
                    ok, detail = True, "connected"
                else:
                    writer.write(
                        f"GET {settings.path} HTTP/1.1\r\nHost: {backend.address}\r\n"
                        "User-Agent: lb-lab-health-check\r\nConnection: close\r\n\r\n".encode()
                    )
                    line = await reader.readline()
                    ok, detail = _judge_status(line, settings.path)
        except TimeoutError:
            ok, detail = False, f"no answer within {limit_ms} ms"
        except ConnectionRefusedError:
            refused = (
                "port unreachable (ICMP)" if self.check_type == "udp" else "connection refused"
            )
            ok, detail = False, refused
        except ssl.SSLError as exc:
            ok, detail = False, f"TLS: {tls_failure(exc)}"
        except OSError as exc:
            ok, detail = False, exc.strerror or type(exc).__name__
        finally:
            if writer is not None:
                writer.close()
        return ok, detail, (time.perf_counter() - started) * 1000

    def record(self, backend: Backend, ok: bool, detail: str) -> None:
        """Take one active check's verdict; `rise` or `fall` in a row changes the backend."""
        settings = self.settings
        if ok:
            backend.checks_ok += 1
            backend.checks_failed = 0
            if (
                not backend.passing or backend.ejected_until
            ) and backend.checks_ok >= settings.rise:
                # Good checks since it went down (either way) prove it is back.
                backend.passing = True
                backend.ejected_until = 0.0
                self.back_in_service(backend)
                self._update(
                    backend, f"{settings.rise} good checks in a row: back in service", "active"
                )
        else:
            backend.checks_failed += 1
            backend.checks_ok = 0
            if backend.passing and backend.checks_failed >= settings.fall:
                backend.passing = False
                reason = f"{settings.fall} failed checks in a row ({detail})"
                self._update(backend, reason, "active")

    # -- passive health ------------------------------------------------------------------

    def saw_failure(self, backend: Backend, why: str) -> None:
        passive = self.passive
        if not passive.max_fails or backend.ejected_until:
            return
        now = self.clock.monotonic()
        recent = backend.recent_failures
        recent.append(now)
        while recent and recent[0] < now - passive.fail_timeout_s:
            recent.popleft()
        if len(recent) >= passive.max_fails:
            recent.clear()
            backend.ejected_until = now + passive.fail_timeout_s
            backend.checks_ok = 0  # active checks must prove it again from here
            count = "1 failure" if passive.max_fails == 1 else f"{passive.max_fails} failures"
            self._update(
                backend,
                f"{count} on real traffic within {passive.fail_timeout_s:g} s ({why}): "
                f"out of service for {passive.fail_timeout_s:g} s",
                "passive",
            )

    # -- slow start and timers -----------------------------------------------------------

    def back_in_service(self, backend: Backend) -> None:
        if self.slow_start_s > 0:
            backend.warm_since = self.clock.monotonic()
            backend.warm_fraction = SLOW_START_FLOOR

    def tick(self, now: float) -> None:
        changed = False
        window = self.slow_start_s
        for backend in self.backends():
            if backend.ejected_until and now >= backend.ejected_until:
                backend.ejected_until = 0.0
                if not backend.passing:
                    continue  # the active checks still say down: they will bring it back
                self.back_in_service(backend)
                self._update(
                    backend,
                    f"{self.passive.fail_timeout_s:g} s passed since passive "
                    "health took it out: it gets traffic again",
                    "passive",
                )
            if backend.warm_since:
                ramp = (now - backend.warm_since) / window if window > 0 else 1.0
                if ramp >= 1.0:
                    backend.warm_since, backend.warm_fraction = 0.0, 1.0
                else:
                    backend.warm_fraction = max(ramp, SLOW_START_FLOOR)
                changed = True
        if changed:
            self.changed(None)

    def _update(self, backend: Backend, reason: str, source: str) -> None:
        """Recompute `healthy` from both verdicts and tell everyone what changed."""
        backend.healthy = backend.passing and not backend.ejected_until
        backend.down_reason = "" if backend.healthy else reason
        self.publish(
            {
                "type": HEALTH,
                "t": self.clock.wall(),
                "backend": backend.name,
                "healthy": backend.healthy,
                "source": source,
                "reason": reason,
            }
        )
        self.changed(backend)


def _judge_status(line: bytes, path: str) -> tuple[bool, str]:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False, "not an HTTP answer" if line else "closed without answering"
    status = int(parts[1])
    text = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""
    ok = 200 <= status < 400
    return ok, f"GET {path} answered {status} {text}".rstrip()
