"""The traffic generator: arrivals on the loop clock, handed round-robin to the simulated clients.

`TrafficGenerator` is the one object the control API steers. `serve()` wires
it to the command line: resolve the target, start the control API, report
ready, run until stopped (or for --duration seconds), print a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import sys

from lab.lifecycle import report_ready, run_daemon
from lab.traffic.arrivals import PathMix, PoissonArrivals
from lab.traffic.clients import Client, Job, source_address
from lab.traffic.control import ControlConnection
from lab.traffic.settings import SettingError, Settings, Target, is_loopback
from lab.traffic.stats import TrafficStats

TICK_S = 1.0  # how often waiting requests are checked for their timeout
DRAIN_S = 2.0  # at the end of --duration, how long answers still on their way are waited for


class TrafficGenerator:
    """Sends open-loop traffic to one target; steered by `update`, `send` and `reset`."""

    def __init__(
        self,
        target: Target,
        address: tuple[str, int],
        settings: Settings,
        rng: random.Random,
        bind_source: bool = True,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.target = target
        self.address = address
        self.settings = settings
        self.bind_source = bind_source
        self.stats = TrafficStats()
        self.arrivals = PoissonArrivals(rng)
        self.mix = PathMix(rng)
        self.clients: list[Client] = []
        self.retired: list[Client] = []  # removed, finishing what they had in flight
        self._turn = 0  # round-robin cursor over clients
        self._timer: asyncio.TimerHandle | None = None
        self._ticker = self.loop.call_later(TICK_S, self._tick)
        self._resize(settings.clients)
        self._reschedule()

    # -- steering

    def update(self, changes: object) -> dict:
        """Apply a partial settings change, all of it or none of it (SettingError)."""
        new = self.settings.updated(changes)
        old, self.settings = self.settings, new
        diff = {k: v for k, v in new.as_json().items() if getattr(old, k) != v}
        if "keep_alive" in diff:
            for client in self.clients:
                client.set_keep_alive(new.keep_alive)
        if "protocol" in diff or "udp_session" in diff:
            for client in self.clients:
                client.protocol = new.protocol
                client.datagrams.set_session(new.udp_session)
        if "clients" in diff:
            self._resize(new.clients)
        if "rate" in diff or "paused" in diff:
            self._reschedule()
        if diff:
            print(f"traffic: {', '.join(f'{k} {getattr(old, k)} -> {v}' for k, v in diff.items())}")
        return diff

    def send(self, count: int) -> None:
        """A burst of `count` requests now, spread over the clients, paused or not."""
        now = self.loop.time()
        for _ in range(count):
            self._submit(now)

    def reset(self) -> None:
        """Zero the counters and start the clients afresh: empty cookie jars (new visitors,
        with no session or sticky cookie), and the next request from c1 again."""
        self.stats.reset()
        for client in self.clients:
            client.jar.clear()
        self._turn = 0

    def state(self) -> dict:
        settings = self.settings
        return {
            "target": self.target.url,
            "rate": settings.rate,
            "clients": settings.clients,
            "keep_alive": settings.keep_alive,
            "paused": settings.paused,
            "protocol": settings.protocol,
            "udp_session": settings.udp_session,
            "counters": self.stats.as_json(),
            "latency_ms": self.stats.percentiles(self.loop.time()),
            "client_list": [
                {
                    "name": client.name,
                    "address": client.source,
                    "connections": len(client.connections),
                    "waiting": len(client.waiting),
                    "cookies": sorted(client.jar.as_dict()),
                    "udp_ports": client.datagrams.ports,
                }
                for client in self.clients
            ],
        }

    def stop(self) -> None:
        """Stop sending and drop every connection."""
        self.arrivals.stop()
        for handle in (self._timer, self._ticker):
            if handle is not None:
                handle.cancel()
        for client in self.clients + self.retired:
            client.abort()

    def stop_arrivals(self) -> None:
        self.arrivals.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the schedule

    def _reschedule(self) -> None:
        self.stop_arrivals()
        if self.settings.paused or self.settings.rate == 0:
            return
        due = self.arrivals.start(self.settings.rate, self.loop.time())
        self._timer = self.loop.call_at(due, self._arrive)

    def _arrive(self) -> None:
        self._timer = None
        for due in self.arrivals.due(self.loop.time()):
            self._submit(due)
        if self.arrivals.next_due is not None:
            self._timer = self.loop.call_at(self.arrivals.next_due, self._arrive)

    def _submit(self, due: float) -> None:
        self._turn %= len(self.clients)
        client = self.clients[self._turn]
        self._turn += 1
        client.submit(Job(self.mix.pick(), due))

    def _resize(self, count: int) -> None:
        while len(self.clients) > count:
            client = self.clients.pop()
            client.retire()
            self.retired.append(client)
        while len(self.clients) < count:
            self.clients.append(
                Client(
                    len(self.clients) + 1,
                    self.target,
                    self.address,
                    self.stats,
                    keep_alive=self.settings.keep_alive,
                    bind_source=self.bind_source,
                    protocol=self.settings.protocol,
                    udp_session=self.settings.udp_session,
                )
            )

    def _tick(self) -> None:
        now = self.loop.time()
        for client in self.clients + self.retired:
            client.expire(now)
        self.retired = [client for client in self.retired if client.connections]
        self._ticker = self.loop.call_later(TICK_S, self._tick)


async def serve(
    options: argparse.Namespace,
    address: tuple[str, int],
    bind_source: bool,
    stop: asyncio.Event,
) -> None:
    """Send traffic until `stop` is set or --duration has passed."""
    loop = asyncio.get_running_loop()
    host, port = options.control
    # Bound first, so a busy control port stops us before any traffic leaves. Nothing can
    # connect before `generator` exists: no await comes between the two.
    server = await loop.create_server(lambda: ControlConnection(generator), host, port)
    settings = Settings(
        options.rate,
        options.clients,
        options.keep_alive,
        options.paused,
        options.protocol,
        options.udp_session,
    )
    generator = TrafficGenerator(
        options.target, address, settings, random.Random(options.seed), bind_source
    )
    try:
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        control = (
            f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
        )
        paused = " (paused)" if settings.paused else ""
        report_ready(
            f"traffic -> {options.target.url} at {settings.rate:g} "
            f"{'datagrams' if settings.protocol == 'udp' else 'req'}/s from "
            f"{settings.clients} clients{paused}; control on http://{control}",
            control=control,
        )
        if await _stopped_or_timed_out(stop, options.duration or None):
            return
        generator.stop_arrivals()
        await _drain(generator, stop)
    finally:
        server.close()
        generator.stop()
        print(generator.stats.summary(loop.time()), flush=True)


async def _stopped_or_timed_out(stop: asyncio.Event, duration: float | None) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except TimeoutError:
        return False
    return True


async def _drain(generator: TrafficGenerator, stop: asyncio.Event) -> None:
    """Give the answers still on their way a moment to arrive, so the summary counts them."""
    deadline = generator.loop.time() + DRAIN_S
    while generator.stats.in_flight > 0 and not stop.is_set():
        if generator.loop.time() >= deadline:
            return
        await asyncio.sleep(0.02)


def resolve(target: Target) -> tuple[tuple[str, int], bool]:
    """The target's IPv4 address, and whether clients can each send from their own address."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        raise SettingError(
            "target", f"cannot find an IPv4 address for {target.host!r}: {exc}"
        ) from None
    host, port = infos[0][4][:2]
    return (host, port), is_loopback(host) and _can_bind(source_address(1))


def _can_bind(host: str) -> bool:
    # Linux routes all of 127/8 to loopback; macOS has only 127.0.0.1 unless told otherwise.
    with contextlib.suppress(OSError), socket.socket() as probe:
        probe.bind((host, 0))
        return True
    return False


def run(options: argparse.Namespace, address: tuple[str, int], bind_source: bool) -> int:
    if not bind_source:
        print(
            "lb-lab traffic: note: every client sends from the same address "
            "(127.0.0.2 and up are not usable here, or the target is not on loopback)",
            file=sys.stderr,
        )
    return run_daemon(lambda stop: serve(options, address, bind_source, stop))
