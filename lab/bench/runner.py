"""Run the benchmark: start the backends and every proxy, then alternate runs over rounds.

Every proxy under test is up for the whole benchmark and each round runs every
target once, in an order rotated by one each round. A noisy neighbour then
hurts all targets alike instead of the one that happened to run during it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lab.bench import loadgen, peers, tools
from lab.bench.admin import (
    AdminError,
    SubscriberProcess,
    find_dropped,
    get_json,
    split_address,
)
from lab.bench.report import Report, format_text
from lab.bench.stats import LATENCY, THROUGHPUT, Sample, summarise
from lab.supervisor import StartError, Supervisor

WARMUP_S = 0.5
FAILURES = (OSError, TimeoutError, tools.ToolError, peers.PeerError, AdminError)


@dataclass
class Target:
    """Something to send load to: a backend, lb-lab in one mode, or a peer proxy."""

    name: str
    host: str
    port: int
    about: str
    pid: int | None = None  # the process whose memory is reported
    process: str = ""  # how that process is named in the memory line
    admin: tuple[str, int] | None = None  # lb-lab's admin API, for the /events subscriber

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


@dataclass(frozen=True)
class Plan:
    """The options, resolved: what to run and how."""

    targets: tuple[str, ...]
    tool: str  # throughput tool: wrk, hey or builtin
    duration: float
    rounds: int
    connections: int
    backends: int
    rate: float  # 0: no latency phase
    rate_connections: int

    def phases(self) -> tuple[str, ...]:
        return (THROUGHPUT, LATENCY) if self.rate > 0 else (THROUGHPUT,)


class Bench:
    """One benchmark: owns every process it starts and stops them all at the end."""

    def __init__(self, plan: Plan, say: Callable[[str], None]) -> None:
        self.plan = plan
        self.say = say
        self.targets: dict[str, Target] = {}
        self.skipped: dict[str, str] = {}
        self.notes: list[str] = []

    def run(self) -> Report:
        with Supervisor() as supervisor, contextlib.ExitStack() as stack:
            upstreams = self._start_backends(supervisor)
            self._start_lb(supervisor, upstreams)
            self._start_peers(stack, upstreams)
            self._warm_up()
            samples = self._rounds()
            memory = self._memory()
            events = self._events_summary(samples)
        return self._report(samples, memory, events)

    # starting things

    def _start_backends(self, supervisor: Supervisor) -> list[peers.Upstream]:
        upstreams = []
        for i in range(1, self.plan.backends + 1):
            name = f"b{i}"
            child = supervisor.start(name, ["backend", "--name", name, "--port", "0"])
            host, port = split_address(child.addresses["listen"])
            upstreams.append(peers.Upstream(name, host, port))
        first = upstreams[0]
        self.targets["direct"] = Target(
            "direct",
            first.host,
            first.port,
            f"backend {first.name} alone, no proxy",
            pid=supervisor.children[first.name].pid,
            process=f"backend {first.name}",
        )
        return upstreams

    def _start_lb(self, supervisor: Supervisor, upstreams: list[peers.Upstream]) -> None:
        backends = [arg for u in upstreams for arg in ("--backend", f"{u.name}={u.host}:{u.port}")]
        for mode, name in (("http", "lb-http"), ("tcp", "lb-tcp")):
            if name not in self.plan.targets:
                continue
            args = ["balancer", "--mode", mode, "--listen", "127.0.0.1:0"]
            args += ["--admin", "127.0.0.1:0", "--algorithm", "round-robin", *backends]
            try:
                child = supervisor.start(name, args)
            except StartError as exc:
                self.skipped[name] = f"lb-lab balancer did not start: {exc}"
                continue
            host, port = split_address(child.addresses["listen"])
            admin = split_address(child.addresses["admin"])
            layer = "Layer 7" if mode == "http" else "Layer 4"
            self.targets[name] = Target(
                name,
                host,
                port,
                f"lb-lab balancer --mode {mode} ({layer}), round-robin, one process, "
                f"{build_of(admin)}, "
                "with an /events subscriber attached during its runs",
                pid=child.pid,
                process=f"lb-lab {mode}",
                admin=admin,
            )

    def _start_peers(self, stack: contextlib.ExitStack, upstreams: list[peers.Upstream]) -> None:
        wanted = set(self.plan.targets)
        if "nginx" in wanted:
            if not peers.installed("nginx"):
                self.skipped["nginx"] = "nginx is not installed"
            else:
                with self._peer_failure(["nginx"]):
                    nginx = peers.start_nginx(upstreams)
                    stack.callback(nginx.stop)
                    self._add_peer("nginx", nginx, "http", "1 worker, upstream keepalive 64")
        haproxy_targets = sorted(wanted & {"haproxy-http", "haproxy-tcp"})
        if haproxy_targets:
            if not peers.installed("haproxy"):
                self.skipped.update(dict.fromkeys(haproxy_targets, "haproxy is not installed"))
                return
            with self._peer_failure(haproxy_targets):
                haproxy = peers.start_haproxy(upstreams)
                stack.callback(haproxy.stop)
                for name in haproxy_targets:
                    mode = name.removeprefix("haproxy-")
                    extra = "http-reuse always" if mode == "http" else "Layer 4"
                    self._add_peer(name, haproxy, mode, f"mode {mode}, nbthread 1, {extra}")

    @contextlib.contextmanager
    def _peer_failure(self, names: list[str]) -> Iterator[None]:
        try:
            yield
        except peers.PeerError as exc:
            self.skipped.update(dict.fromkeys(names, str(exc)))

    def _add_peer(self, name: str, peer: peers.Peer, listener: str, about: str) -> None:
        host, port = peer.listeners[listener]
        workers = peer.worker_pids()
        self.targets[name] = Target(
            name,
            host,
            port,
            f"{peer.version}, {about}",
            pid=workers[0] if workers else None,
            process="nginx worker" if peer.name == "nginx" else peer.name,
        )

    # running

    def _order(self) -> list[Target]:
        return [self.targets[name] for name in self.plan.targets if name in self.targets]

    def _warm_up(self) -> None:
        """Open the proxies' upstream connections and wake every process before measuring."""
        seconds = min(WARMUP_S, self.plan.duration / 2)
        for target in self._order():
            with contextlib.suppress(*FAILURES):
                loadgen.closed_loop(
                    target.name, target.host, target.port, self.plan.connections, seconds
                )

    def _rounds(self) -> list[Sample]:
        samples = []
        order = self._order()
        for r in range(self.plan.rounds):
            turn = order[r % len(order) :] + order[: r % len(order)] if order else []
            for phase in self.plan.phases():
                for target in turn:
                    sample = self._one_run(target, phase, r + 1)
                    if sample is not None:
                        samples.append(sample)
        return samples

    def _one_run(self, target: Target, phase: str, round_no: int) -> Sample | None:
        label = f"round {round_no}/{self.plan.rounds} {phase:<10} {target.name:<13}"
        try:
            with self._subscriber(target) as subscriber:
                cpu_before = cpu_seconds(target.pid)
                sample = self._measure(target, phase)
                cpu_after = cpu_seconds(target.pid)
            if subscriber is not None:  # it counts until it is stopped
                sample.events = subscriber.lines
            if not sample.requests:
                raise tools.ToolError(f"no answer at all ({sample.errors} errors)")
        except FAILURES as exc:
            self.say(f"{label} failed: {exc}")
            self.notes.append(f"round {round_no} {phase} {target.name} failed: {exc}")
            return None
        sample.round = round_no
        if cpu_before is not None and cpu_after is not None:
            sample.cpu_s = cpu_after - cpu_before
        cost = sample.cpu_us_per_request
        self.say(
            f"{label} {sample.rps:>9,.0f} req/s  p50 {sample.p50_ms:.3f} ms  "
            f"p99 {sample.p99_ms:.3f} ms  errors {sample.errors}"
            + ("" if cost is None else f"  cpu {cost:.0f} us/req")
            + f"  ({sample.tool})"
        )
        return sample

    @contextlib.contextmanager
    def _subscriber(self, target: Target) -> Iterator[SubscriberProcess | None]:
        if target.admin is None:
            yield None
            return
        with SubscriberProcess(*target.admin) as subscriber:
            yield subscriber

    def _measure(self, target: Target, phase: str) -> Sample:
        plan = self.plan
        if phase == LATENCY:
            return loadgen.fixed_rate(
                target.name,
                target.host,
                target.port,
                plan.rate,
                plan.rate_connections,
                plan.duration,
            )
        if plan.tool == "builtin":
            return loadgen.closed_loop(
                target.name, target.host, target.port, plan.connections, plan.duration
            )
        return tools.run(plan.tool, target.name, target.url, plan.connections, plan.duration)

    # what we saw

    def _memory(self) -> dict[str, int]:
        sizes, seen = {}, set()
        for target in self._order():
            if target.pid is None or target.pid in seen:
                continue  # HAProxy serves both of its targets from one process
            seen.add(target.pid)
            if (kb := rss_kb(target.pid)) is not None:
                sizes[target.process] = kb
        return sizes

    def _events_summary(self, samples: list[Sample]) -> dict[str, dict]:
        seen = {}
        for target in self._order():
            heard = [s for s in samples if s.target == target.name and s.events is not None]
            if target.admin is None or not heard:
                continue
            dropped = None
            with contextlib.suppress(*FAILURES, ValueError):
                dropped = find_dropped(get_json(*target.admin, "/state"))
            lines = sum(s.events or 0 for s in heard)
            requests = sum(s.requests for s in heard)
            per_request = lines / requests if requests else 0.0
            seen[target.name] = {"lines": lines, "per_request": per_request, "dropped": dropped}
        return seen

    def _report(self, samples: list[Sample], memory: dict[str, int], events: dict) -> Report:
        for target in self._order():
            if not any(s.target == target.name for s in samples):
                self.skipped[target.name] = "every run failed (see the notes)"
        summaries = {}
        for phase in self.plan.phases():
            for target in self._order():
                mine = [s for s in samples if s.phase == phase and s.target == target.name]
                if mine:
                    summaries[(phase, target.name)] = summarise(mine)
        plan = self.plan
        settings = {
            "rounds": plan.rounds,
            "duration": plan.duration,
            "connections": plan.connections,
            "backends": plan.backends,
            "rate": plan.rate,
            "rate_connections": plan.rate_connections,
            "throughput_tool": describe_tool(plan.tool),
            "latency_tool": describe_tool("builtin"),
        }
        abouts = {name: t.about for name, t in self.targets.items() if name in plan.targets}
        return Report(settings, abouts, summaries, self.skipped, self.notes, memory, events)


def build_of(admin: tuple[str, int]) -> str:
    """How the balancer runs: compiled with mypyc, or pure Python and why (see /state)."""
    try:
        return str(get_json(*admin, "/state").get("build", "build unknown"))
    except (AdminError, ValueError) as exc:
        return f"build unknown ({exc})"


def describe_tool(tool: str) -> str:
    if tool == "builtin":
        return "lb-lab's built-in asyncio generator (uvloop, httptools, one process)"
    if tool == "wrk":
        return f"{tools.version('wrk')} with {tools.WRK_THREADS} thread"
    return tools.version(tool)


def rss_kb(pid: int) -> int | None:
    """Resident memory of a process in kB, from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU time a process has used, from /proc (None where there is none)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def resolve_tool(wanted: str) -> str:
    """The throughput tool to use; raises ValueError when the one asked for is missing."""
    if wanted == "auto":
        return tools.auto_tool()
    if wanted != "builtin" and not tools.installed(wanted):
        raise ValueError(f"--tool {wanted}: {wanted} is not installed (try --tool builtin)")
    return wanted


def main(options: argparse.Namespace) -> int:
    try:
        tool = resolve_tool(options.tool)
    except ValueError as exc:
        print(f"lb-lab bench: error: {exc}", file=sys.stderr)
        return 2
    plan = Plan(
        targets=options.only,
        tool=tool,
        duration=options.duration,
        rounds=options.rounds,
        connections=options.connections,
        backends=options.backends,
        rate=options.rate,
        rate_connections=options.rate_connections,
    )
    try:
        report = Bench(plan, stderr_line).run()
    except StartError as exc:
        print(f"lb-lab bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lb-lab bench: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    if options.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_text(report))
    return 0
