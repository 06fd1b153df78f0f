"""The traffic generator: arrivals on the loop clock, handed round-robin to the simulated clients.

`TrafficGenerator` is the one object the control API steers. `serve()` wires
it to the command line: resolve the target, start the control API, report
ready, run until stopped (or for --duration seconds), print a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys

from lab.address import can_bind
from lab.lifecycle import report_ready, run_daemon
from lab.traffic.clients import Client, source_address
from lab.traffic.connection import Job
from lab.traffic.control import ControlConnection
from lab.traffic.schedule import Arrival, Schedule
from lab.traffic.settings import SettingError, Settings, Target, is_loopback
from lab.traffic.stats import TrafficStats
from lab.traffic.tls import names_for

TICK_S = 1.0  # how often waiting requests are checked for their timeout
DRAIN_S = 2.0  # at the end of --duration, how long answers still on their way are waited for


class Side:
    """One target of the traffic, with its own clients: their connections, cookie jars and counts.

    A comparison has two sides. Client k sends from the same source address on
    both, and gets the same requests at the same instants; only the answers (and
    so the cookies each balancer sets, and the waits) can differ.
    """

    def __init__(self, target: Target, address: tuple[str, int]) -> None:
        self.target = target
        self.tls = target.https  # as the generator's settings say (set by it)
        self.address = address
        self.stats = TrafficStats()
        self.clients: list[Client] = []
        self.retired: list[Client] = []  # removed, finishing what they had in flight

    def state(self, now: float) -> dict:
        return {
            "target": self.target.url_for(self.tls),
            "counters": self.stats.as_json(),
            "latency_ms": self.stats.percentiles(now),
            "distribution": self.stats.distribution.as_json(),
        }


class TrafficGenerator:
    """Sends one open-loop schedule to each target at once; steered by `update`, `send`, `reset`.

    `targets` pairs each target with its resolved address. With two (a
    comparison) every arrival is sent to both, at the same instant, by the same
    client: one arrival, two sends. With `split`, the clients are shared out
    between the targets instead (client k sends to target k mod 2, as DNS or
    ECMP would spread them over two balancers): one arrival, one send.
    """

    def __init__(
        self,
        targets: list[tuple[Target, tuple[str, int]]],
        settings: Settings,
        rng: random.Random,
        bind_source: bool = True,
        proxy: str = "",
        split: bool = False,
        ca_pem: str | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.split = split and len(targets) > 1
        self._turns: dict[int, int] = {}  # spread "request": each client's next balancer
        self.sides = [Side(target, address) for target, address in targets]
        self.ca_pem = ca_pem  # the CA that HTTPS verifies against (lab.traffic.tls)
        check_tls(settings, ca_pem)
        self.settings = settings
        self.bind_source = bind_source
        self.proxy = proxy  # "v1"/"v2": clients name their address in a PROXY header
        self.schedule = Schedule(rng, settings.clients)
        self.schedule.mix.set_heavy(settings.heavy_share, settings.heavy_ms)
        self._timer: asyncio.TimerHandle | None = None
        self._ticker = self.loop.call_later(TICK_S, self._tick)
        self._resize(settings.clients)
        self._reschedule()

    @property
    def target(self) -> Target:
        return self.sides[0].target

    @property
    def stats(self) -> TrafficStats:
        """The first side's counts (the only side's, unless comparing)."""
        return self.sides[0].stats

    @property
    def clients(self) -> list[Client]:
        return self.sides[0].clients

    # -- steering

    def update(self, changes: object) -> dict:
        """Apply a partial settings change, all of it or none of it (SettingError)."""
        new = self.settings.updated(changes)
        check_tls(new, self.ca_pem)
        old, self.settings = self.settings, new
        diff = {k: v for k, v in new.as_json().items() if getattr(old, k) != v}
        if "keep_alive" in diff:
            for side in self.sides:
                for client in side.clients:
                    client.set_keep_alive(new.keep_alive)
        if "protocol" in diff or "udp_session" in diff:
            for side in self.sides:
                for client in side.clients:
                    client.protocol = new.protocol
                    client.datagrams.set_session(new.udp_session)
        if "heavy_share" in diff or "heavy_ms" in diff:
            self.schedule.mix.set_heavy(new.heavy_share, new.heavy_ms)
        if "clients" in diff:
            self._resize(new.clients)
        if "connections" in diff:
            for side in self.sides:
                for client in side.clients:
                    client.set_max_connections(new.connections)
        if diff.keys() & {"tls", "sni_mix", "resumption"}:
            self._set_tls()
        if "rate" in diff or "paused" in diff:
            self._reschedule()
        if diff:
            print(f"traffic: {', '.join(f'{k} {getattr(old, k)} -> {v}' for k, v in diff.items())}")
        return diff

    def send(self, count: int) -> None:
        """A burst of `count` requests now, spread over the clients, paused or not."""
        for arrival in self.schedule.burst(count, self.loop.time()):
            self._submit(arrival)

    def reset(self) -> None:
        """Zero the counters and start the clients afresh: empty cookie jars (new visitors,
        with no session or sticky cookie), and the next request from c1 again."""
        for side in self.sides:
            side.stats.reset()
            for client in side.clients:
                client.jar.clear()
        self.schedule.restart_turns()
        self._turns.clear()

    def state(self) -> dict:
        settings = self.settings
        now = self.loop.time()
        return {
            "target": self.target.url_for(settings.tls),
            "rate": settings.rate,
            "clients": settings.clients,
            "keep_alive": settings.keep_alive,
            "paused": settings.paused,
            "protocol": settings.protocol,
            "client_addresses": self.client_addresses(),
            "udp_session": settings.udp_session,
            "tls": settings.tls,
            "sni_mix": dict(settings.sni_mix),
            "resumption": settings.resumption,
            "heavy_share": settings.heavy_share,
            "heavy_ms": settings.heavy_ms,
            "counters": self.stats.as_json(),
            "latency_ms": self.stats.percentiles(now),
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
            "sides": [side.state(now) for side in self.sides],
        }

    def client_addresses(self) -> str:
        """How the clients' own addresses reach the balancer: bound, said or not at all."""
        if self.proxy:
            return f"proxy-{self.proxy}"
        return "bound" if self.bind_source else "shared"

    def stop(self) -> None:
        """Stop sending and drop every connection."""
        self.schedule.stop()
        for handle in (self._timer, self._ticker):
            if handle is not None:
                handle.cancel()
        for side in self.sides:
            for client in side.clients + side.retired:
                client.abort()

    def stop_arrivals(self) -> None:
        self.schedule.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def in_flight(self) -> int:
        return sum(side.stats.in_flight for side in self.sides)

    # -- the schedule

    def _reschedule(self) -> None:
        self.stop_arrivals()
        if self.settings.paused or self.settings.rate == 0:
            return
        due = self.schedule.start(self.settings.rate, self.loop.time())
        self._timer = self.loop.call_at(due, self._arrive)

    def _arrive(self) -> None:
        self._timer = None
        for arrival in self.schedule.due(self.loop.time()):
            self._submit(arrival)
        if self.schedule.next_due is not None:
            self._timer = self.loop.call_at(self.schedule.next_due, self._arrive)

    def _submit(self, arrival: Arrival) -> None:
        job = Job(arrival.page, arrival.due)
        if self.split:  # two balancers: this request goes to one of them
            side = self.sides[self._balancer_for(arrival.client)]
            side.clients[arrival.client].submit(job)
            return
        for side in self.sides:  # one arrival, one send per side, in the same callback
            side.clients[arrival.client].submit(Job(arrival.page, arrival.due))

    def _balancer_for(self, client: int) -> int:
        """Which balancer: the client's own (spread "client"), or the next in its turn."""
        if self.settings.spread == "client":
            return client % len(self.sides)
        turn = self._turns.get(client, client)  # c1 starts on the first, c2 on the second
        self._turns[client] = turn + 1
        return turn % len(self.sides)

    def _resize(self, count: int) -> None:
        self.schedule.resize(count)
        for side in self.sides:
            while len(side.clients) > count:
                client = side.clients.pop()
                client.retire()
                side.retired.append(client)
            while len(side.clients) < count:
                side.clients.append(
                    Client(
                        len(side.clients) + 1,
                        side.target,
                        side.address,
                        side.stats,
                        keep_alive=self.settings.keep_alive,
                        bind_source=self.bind_source,
                        protocol=self.settings.protocol,
                        udp_session=self.settings.udp_session,
                        proxy=self.proxy,
                        ca_pem=self.ca_pem,
                    )
                )
                side.clients[-1].max_connections = self.settings.connections
        self._set_tls()

    def _set_tls(self) -> None:
        """Give every client HTTPS or not, its SNI name from the mix, and resumption."""
        settings = self.settings
        names = names_for(settings.sni_mix, settings.clients)
        for side in self.sides:
            side.tls = settings.tls
            for client, name in zip(side.clients, names, strict=False):
                client.set_tls(settings.tls, name, settings.resumption)

    def _tick(self) -> None:
        now = self.loop.time()
        for side in self.sides:
            for client in side.clients + side.retired:
                client.expire(now)
            side.retired = [client for client in side.retired if client.connections]
        self._ticker = self.loop.call_later(TICK_S, self._tick)


async def serve(
    options: argparse.Namespace,
    targets: list[tuple[Target, tuple[str, int]]],
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
        tls=options.tls or any(target.https for target, _ in targets),
        sni_mix=options.sni_mix,
        resumption=options.resumption,
    )
    generator = TrafficGenerator(
        targets,
        settings,
        random.Random(options.seed),
        bind_source,
        options.proxy_protocol or "",
        split=options.split,
        ca_pem=options.ca_pem,
    )
    try:
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        control = (
            f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
        )
        paused = " (paused)" if settings.paused else ""
        where = (" or " if generator.split else " and ").join(t.url for t, _ in targets)
        report_ready(
            f"traffic -> {where} at {settings.rate:g} "
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
        for side in generator.sides:
            print(side.stats.summary(loop.time()), flush=True)


def check_tls(settings: Settings, ca_pem: str | None) -> None:
    """HTTPS needs a CA to verify against; SettingError naming `tls` if it cannot work."""
    if not settings.tls:
        return
    if ca_pem is None:
        raise SettingError(
            "tls",
            "tls needs the CA to verify the balancer against: start the traffic generator "
            "with --ca-file FILE (the lab's ca.pem)",
        )


async def _stopped_or_timed_out(stop: asyncio.Event, duration: float | None) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except TimeoutError:
        return False
    return True


async def _drain(generator: TrafficGenerator, stop: asyncio.Event) -> None:
    """Give the answers still on their way a moment to arrive, so the summary counts them."""
    deadline = generator.loop.time() + DRAIN_S
    while generator.in_flight > 0 and not stop.is_set():
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
    return (host, port), is_loopback(host) and can_bind(source_address(1))


def run(
    options: argparse.Namespace,
    targets: list[tuple[Target, tuple[str, int]]],
    bind_source: bool,
) -> int:
    if not bind_source and not options.proxy_protocol:
        print(
            "lb-lab traffic: note: every client sends from the same address "
            "(127.0.0.2 and up are not usable here, or the target is not on loopback; "
            "--proxy-protocol v2 names each client's own in a PROXY header instead)",
            file=sys.stderr,
        )
    return run_daemon(lambda stop: serve(options, targets, bind_source, stop))
