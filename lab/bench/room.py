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
import asyncio
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
from lab.bench.procs import alive, descendants, machine_busy_s
from lab.bench.redis_server import RedisError, RedisServer
from lab.bench.runner import cpu_seconds, stderr_line
from lab.bench.stats import percentile
from lab.bench.viewers import Viewer
from lab.bench.web import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    LabProcess,
    WebBenchError,
    balancer_totals,
)

WARMUP_S = 2.0
CONNECT_AT_ONCE = 20  # viewers connecting side by side (a class arriving, not a stampede)
CONNECT_TIMEOUT_S = 120.0
LAG_TICK_S = 0.01


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


class ViewerRoom:
    """The simulated viewers, on an asyncio loop of their own in a thread of this process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.viewers: list[Viewer] = []
        self.failed: list[str] = []
        self.lags: list[float] = []  # how late the viewers' own loop wakes: their share of delay
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self._watch_lag()))

    async def _watch_lag(self) -> None:
        while True:
            asked = self.loop.time()
            await asyncio.sleep(LAG_TICK_S)
            self.lags.append(self.loop.time() - asked - LAG_TICK_S)

    def _run(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def grow(self, count: int) -> None:
        """Connect viewers until `count` are (or were tried), CONNECT_AT_ONCE at a time."""
        self._run(self._grow(count), CONNECT_TIMEOUT_S + 30)

    async def _grow(self, count: int) -> None:
        while len(self.viewers) + len(self.failed) < count:
            batch = min(CONNECT_AT_ONCE, count - len(self.viewers) - len(self.failed))
            viewers = [Viewer(self.url) for _ in range(batch)]
            done = await asyncio.gather(
                *(v.connect(CONNECT_TIMEOUT_S) for v in viewers), return_exceptions=True
            )
            for viewer, result in zip(viewers, done, strict=True):
                if isinstance(result, BaseException):
                    self.failed.append(f"{type(result).__name__}: {result}")
                    await viewer.close()
                else:
                    self.viewers.append(viewer)

    def start_window(self) -> None:
        def clear() -> None:
            for viewer in self.viewers:
                viewer.delays.clear()
                viewer.count = 0
            self.lags.clear()

        self.loop.call_soon_threadsafe(clear)

    def window(self) -> dict:
        """Delivery figures since start_window, read on the viewers' own loop."""

        async def read() -> dict:
            delays = sorted(d * 1000 for v in self.viewers for d in v.delays)
            connected = [v for v in self.viewers if v.sio.connected]
            transports: dict[str, int] = {}
            processes: dict[str, int] = {}
            for viewer in connected:
                transports[viewer.transport or "?"] = transports.get(viewer.transport or "?", 0) + 1
                where = viewer.process or "the page's own process"
                processes[where] = processes.get(where, 0) + 1
            counts = [v.count for v in self.viewers]
            lags = sorted(lag * 1000 for lag in self.lags)
            return {
                "viewers_connected": len(connected),
                "viewers_failed": len(self.failed),
                "transports": transports,
                "viewers_by_process": processes,
                "batches_min_per_viewer": min(counts) if counts else 0,
                "batches_max_per_viewer": max(counts) if counts else 0,
                "delivery_samples": len(delays),
                "delivery_p50_ms": round(percentile(delays, 50), 1) if delays else None,
                "delivery_p95_ms": round(percentile(delays, 95), 1) if delays else None,
                "delivery_max_ms": round(delays[-1], 1) if delays else None,
                "viewer_loop_lag_p95_ms": round(percentile(lags, 95), 1) if lags else None,
            }

        return self._run(read(), 60)

    def close(self) -> None:
        async def close_all() -> None:
            await asyncio.gather(*(v.close() for v in self.viewers), return_exceptions=True)

        try:
            self._run(close_all(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


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
                lab = LabProcess(self.plan.backends, extra)
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
        processes = self._processes(lab, redis)
        room = ViewerRoom(lab.url)
        try:
            for count in plan.steps:
                self.say(f"connecting viewers: {count} ({plan.workers} web process(es))")
                room.grow(count)
                time.sleep(WARMUP_S)
                self.steps.append(self._window(lab, page, room, count, processes))
                self.say(f"  {summary(self.steps[-1])}")
        finally:
            room.close()

    @staticmethod
    def _processes(lab: LabProcess, redis: RedisServer | None) -> dict[str, int]:
        """The processes whose CPU the benchmark reports, by role."""
        output = "".join(lab.output)
        workers = re.findall(r"(w\d+) \S+ \(pid (\d+)\)", output)
        if not workers:
            return {"web": lab.pid}  # the page is served by `lb-lab serve` itself
        found = {f"web {name}": int(pid) for name, pid in workers}
        found["relay (lb-lab serve)"] = lab.pid
        if redis is not None and redis.process is not None:
            found["redis"] = redis.process.pid  # the tether execs it: the same pid
        return found

    def _window(self, lab, page, room: ViewerRoom, count: int, processes: dict) -> Step:
        routed_before = balancer_totals(lab.balancer_state())["routed"]
        before = {role: cpu_seconds(pid) or 0.0 for role, pid in processes.items()}
        bench_before, machine_before = cpu_seconds(os.getpid()) or 0.0, machine_busy_s()
        room.start_window()
        page.evaluate(START_FRAME_COUNTER)
        began = time.monotonic()
        time.sleep(self.plan.seconds)
        frames = page.evaluate(STOP_FRAME_COUNTER)
        window = time.monotonic() - began
        figures = room.window()
        routed = balancer_totals(lab.balancer_state())["routed"] - routed_before
        figures["achieved_rps"] = round(routed / window)
        cpu = {
            role: round(((cpu_seconds(pid) or 0.0) - before[role]) / window * 100, 1)
            for role, pid in processes.items()
        }
        figures["cpu_percent"] = cpu
        figures["bench_cpu_percent"] = round(
            ((cpu_seconds(os.getpid()) or 0.0) - bench_before) / window * 100, 1
        )
        machine_after = machine_busy_s()
        if machine_before is not None and machine_after is not None:
            figures["machine_busy_percent"] = round((machine_after - machine_before) / window * 100)
        figures["presenter_fps"] = round(frames["frames"] / (frames["ms"] / 1000), 1)
        figures["presenter_worst_frame_ms"] = round(frames["worst_ms"], 1)
        figures["window_s"] = round(window, 2)
        figures["delivery_batches_per_s"] = round(
            figures["delivery_samples"] / window / max(figures["viewers_connected"], 1), 1
        )
        return Step(count, figures)


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
