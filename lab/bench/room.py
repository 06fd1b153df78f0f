"""`lb-lab bench --viewers N`: a classroom's worth of viewers on one lab, and what it costs.

It starts a real `lb-lab serve` on free ports (with `--web-workers W` behind
the lab's own balancer and a throwaway redis-server as their message queue
when W > 1), opens the page in headless Chromium as the presenter (the machinery
of `lb-lab bench --web`), turns the traffic up through the page's own
`command`, and connects N simulated viewers (python-socketio clients,
lab.bench.viewers) through the page's address, as browsers would.

`--viewers 25,50,100,200` adds viewers in steps on one lab and measures at each:
viewers connected, batch delivery delay (p50/p95, arrival against the newest
event's time), the presenter page's frames per second, and the CPU of each web
process (and of the relay, Redis and the benchmark itself, which shares the
machine). Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.bench.admin import AdminError, get_json, split_address
from lab.bench.browser import (
    COMMAND,
    HEALTHY_BACKENDS,
    START_FRAME_COUNTER,
    STOP_FRAME_COUNTER,
    VIEWPORT,
    BrowserError,
    chromium,
    find_chromium,
)
from lab.bench.crowd import Crowd
from lab.bench.procs import alive, descendants, machine_busy_s
from lab.bench.redis_server import RedisError, RedisServer
from lab.bench.runner import cpu_seconds, stderr_line
from lab.bench.served_lab import STOP_TIMEOUT_S, LabProcess, WebBenchError
from lab.bench.web import START_TIMEOUT_S, balancer_totals

WARMUP_S = 2.0
# Each new viewer is sent a full state and joins mid-stream: measure once that has passed.
WARMUP_PER_NEW_VIEWER_S = 0.04
VIEWERS_PER_PROCESS = 50  # simulated viewers per crowd process (lab.bench.crowd)
MAX_CROWD_PROCESSES = 8


@dataclass(frozen=True)
class RoomPlan:
    steps: tuple[int, ...]  # viewers connected at each measurement
    workers: int
    rate: float
    seconds: float
    backends: int
    chromium: str


@dataclass
class Step:
    viewers: int
    figures: dict = field(default_factory=dict)


class RoomBench:
    """One lab, one presenter, viewers added step by step; figures at each step."""

    def __init__(self, plan: RoomPlan, say: Callable[[str], None]) -> None:
        self.plan = plan
        self.say = say
        self.steps: list[Step] = []
        self.notes: list[str] = []
        self.started: list[int] = []  # every process below this one while it measured
        self.leftover: list[int] = []  # of those, any still running at the end

    def run(self) -> list[Step]:
        redis = RedisServer().start() if self.plan.workers > 1 else None
        try:
            extra = ()
            if redis is not None:
                extra = ("--web-workers", str(self.plan.workers), "--message-queue", redis.url)
            with chromium(self.plan.chromium) as browser:
                page = browser.new_context(viewport=VIEWPORT).new_page()
                lab = LabProcess(self.plan.backends, extra=extra)
                try:
                    lab.wait_for(lab.printed_all, "the addresses of its parts", START_TIMEOUT_S * 3)
                    self.started = sorted(descendants(os.getpid()))
                    self._measure(page, lab, redis)
                finally:
                    lab.stop()
        finally:
            if redis is not None:
                redis.stop()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(alive(pid) for pid in self.started) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.leftover = [pid for pid in self.started if alive(pid)]
        return self.steps

    def _measure(self, page, lab: LabProcess, redis: RedisServer | None) -> None:
        plan = self.plan
        page.goto(lab.url)
        page.wait_for_function(HEALTHY_BACKENDS, arg=plan.backends, timeout=START_TIMEOUT_S * 1000)
        answer = page.evaluate(COMMAND, {"action": "set_traffic", "rate": plan.rate})
        if not answer.get("ok"):
            raise WebBenchError(f"the lab refused the traffic rate: {answer.get('error')}")
        rooms = min(MAX_CROWD_PROCESSES, math.ceil(plan.steps[-1] / VIEWERS_PER_PROCESS))
        room = Crowd(lab.url, rooms)
        processes = {
            **self._processes(lab, redis),
            **lab_roles(lab),
            "simulated viewers": room.pids,
        }
        try:
            for count in plan.steps:
                self.say(f"connecting viewers: {count} ({plan.workers} web process(es))")
                joined = count - (self.steps[-1].viewers if self.steps else 0)
                room.grow(count)
                time.sleep(WARMUP_S + joined * WARMUP_PER_NEW_VIEWER_S)
                self.steps.append(self._window(lab, page, room, count, processes))
                self.say(f"  {summary(self.steps[-1])}")
        finally:
            room.close()

    @staticmethod
    def _processes(lab: LabProcess, redis: RedisServer | None) -> dict[str, list[int]]:
        """The processes whose CPU the benchmark reports, by role."""
        output = "".join(lab.output)
        workers = re.findall(r"(w\d+) \S+ \(pid (\d+)\)", output)
        if not workers:
            return {"web": [lab.pid]}  # the page is served by `lb-lab serve` itself
        found = {f"web {name}": [int(pid)] for name, pid in workers}
        found["relay (lb-lab serve)"] = [lab.pid]
        for pid in descendants(lab.pid):  # the lab's own balancer: its backends are w1, w2...
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    args = cmdline.read().split(b"\0")
                if b"balancer" in args and any(a.startswith(b"w1=") for a in args):
                    found["the lab's own balancer"] = [pid]
        if redis is not None and redis.process is not None:
            found["redis"] = [redis.process.pid]  # the tether execs it: the same pid
        return found

    def _window(self, lab, page, room: Crowd, count: int, processes: dict) -> Step:
        room.start_window()
        page.evaluate(START_FRAME_COUNTER)
        # CPU and requests are read just around the window, nothing else inside it.
        routed_before = balancer_totals(lab.balancer_state())["routed"]
        before = {role: used(pids) for role, pids in processes.items()}
        bench_before, machine_before = used([os.getpid()]), machine_busy_s()
        began = time.monotonic()
        time.sleep(self.plan.seconds)
        after = {role: used(pids) for role, pids in processes.items()}
        bench_after, machine_after = used([os.getpid()]), machine_busy_s()
        window = time.monotonic() - began
        routed = balancer_totals(lab.balancer_state())["routed"] - routed_before
        frames = page.evaluate(STOP_FRAME_COUNTER)
        figures = room.window()
        figures["achieved_rps"] = round(routed / window)
        figures["cpu_percent"] = {
            role: round((after[role] - before[role]) / window * 100, 1) for role in processes
        }
        figures["bench_cpu_percent"] = round((bench_after - bench_before) / window * 100, 1)
        if machine_before is not None and machine_after is not None:
            figures["machine_busy_percent"] = round((machine_after - machine_before) / window * 100)
        figures["presenter_fps"] = round(frames["frames"] / (frames["ms"] / 1000), 1)
        figures["presenter_worst_frame_ms"] = round(frames["worst_ms"], 1)
        figures["window_s"] = round(window, 2)
        figures["delivery_batches_per_s"] = round(
            figures["delivery_samples"] / window / max(figures["viewers_connected"], 1), 1
        )
        return Step(count, figures)


def lab_roles(lab: LabProcess) -> dict[str, list[int]]:
    """The lab's own processes (service, balancer, traffic, backends), from its service's /lab."""
    found = re.search(r"service:\s+http://(\S+?)/", "".join(lab.output))
    if found is None:
        return {}
    try:
        described = get_json(*split_address(found.group(1)), "/lab")
    except (AdminError, OSError):
        return {}
    roles: dict[str, list[int]] = {"lab service": [described["pid"]]}
    for child in described["children"]:
        role = "backends" if child["name"] not in ("balancer", "traffic") else child["name"]
        roles.setdefault(role, []).append(child["pid"])
    return roles


def used(pids: list[int]) -> float:
    """CPU seconds these processes have used so far."""
    return sum(cpu_seconds(pid) or 0.0 for pid in pids)


def summary(step: Step) -> str:
    f = step.figures
    web = {k: v for k, v in f["cpu_percent"].items() if k.startswith("web")}
    return (
        f"{f['achieved_rps']} req/s; {f['viewers_connected']}/{step.viewers} viewers connected "
        f"({', '.join(f'{n} {k}' for k, n in f['transports'].items())}); "
        f"delivery p50 {f['delivery_p50_ms']} ms, p95 {f['delivery_p95_ms']} ms; "
        f"presenter {f['presenter_fps']} frames/s; web CPU "
        + ", ".join(f"{k} {v}%" for k, v in web.items())
    )


def format_room(plan: RoomPlan, steps: list[Step], notes: list[str]) -> str:
    lines = [
        f"lb-lab bench --viewers: {plan.workers} web process(es), {plan.rate:g} req/s through "
        f"the lab, {plan.backends} backends, {plan.seconds:g} s per step",
        "viewers  connected  req/s  delivery p50/p95/max ms   presenter fps  CPU % of a core",
    ]
    for step in steps:
        f = step.figures
        cpu = ", ".join(f"{k} {v}" for k, v in f["cpu_percent"].items())
        lines.append(
            f"{step.viewers:>7}  {f['viewers_connected']:>9}  {f['achieved_rps']:>5}  "
            f"{f['delivery_p50_ms']}/{f['delivery_p95_ms']}/{f['delivery_max_ms']:<12}  "
            f"{f['presenter_fps']:>13}  {cpu}; bench {f['bench_cpu_percent']}, "
            f"machine {f.get('machine_busy_percent')}; viewers' loop lag p95 "
            f"{f['viewer_loop_lag_p95_ms']} ms"
        )
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


def main(options: argparse.Namespace) -> int:
    try:
        plan = RoomPlan(
            steps=options.viewers,
            workers=options.web_workers,
            rate=options.web_rate,
            seconds=options.web_seconds,
            backends=options.backends,
            chromium=find_chromium(options.chromium),
        )
        bench = RoomBench(plan, stderr_line)
        steps = bench.run()
    except ImportError as exc:
        needs = f"needs {exc.name}: pip install -e '.[test]'"
        print(f"lb-lab bench --viewers: {needs}", file=sys.stderr)
        return 1
    except (BrowserError, WebBenchError, RedisError) as exc:
        print(f"lb-lab bench --viewers: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lb-lab bench --viewers: interrupted; every process it started is stopped")
        return 130
    if options.json:
        shown = {
            "settings": plan.__dict__,
            "steps": [s.__dict__ for s in steps],
            "started": bench.started,
            "leftover": bench.leftover,
        }
        print(json.dumps(shown, indent=2))
    else:
        print(format_room(plan, steps, bench.notes))
        left = bench.leftover
        print(f"still running: pids {left}" if left else "every process it started is stopped")
    return 0
