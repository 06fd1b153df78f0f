"""A crowd of simulated viewers for `lb-lab bench --viewers`, spread over a few processes.

Every viewer decodes every batch (python-socketio does), so hundreds of them in
one Python process would make that process, not the lab, the bottleneck: its
loop would fall behind and every delay it measured would grow with it. So the
crowd is split over several processes (`python -m lab.bench.crowd URL`), each
running a `Room` of viewers on its own asyncio loop, steered by one line of
JSON per command on its stdin and answering one line on its stdout. Each room
also measures how late its own loop wakes: the share of the delays that is the
crowd's, not the lab's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
from typing import Any

from lab.bench.stats import percentile
from lab.bench.tether import tethered
from lab.bench.viewers import Viewer

CONNECT_AT_ONCE = 10  # viewers connecting side by side in one room (a class arriving)
CONNECT_TIMEOUT_S = 120.0
LAG_TICK_S = 0.01
ANSWER_TIMEOUT_S = CONNECT_TIMEOUT_S + 60


class Room:
    """The viewers of one process, on an asyncio loop of their own in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.viewers: list[Viewer] = []
        self.failed: list[str] = []
        self.lags: list[float] = []  # how late this loop wakes: the crowd's share of delay
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self._watch_lag()))

    async def _watch_lag(self) -> None:
        while True:
            asked = self.loop.time()
            await asyncio.sleep(LAG_TICK_S)
            self.lags.append(self.loop.time() - asked - LAG_TICK_S)

    def _run(self, coroutine, timeout: float = ANSWER_TIMEOUT_S):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def grow(self, count: int) -> dict:
        """Connect viewers until `count` are (or were tried), CONNECT_AT_ONCE at a time."""
        self._run(self._grow(count))
        return {"viewers": len(self.viewers), "failed": len(self.failed)}

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

    def start_window(self) -> dict:
        async def clear() -> None:
            for viewer in self.viewers:
                viewer.delays.clear()
                viewer.count = 0
            self.lags.clear()

        self._run(clear())
        return {}

    def window(self) -> dict:
        """What the viewers saw since start_window, as raw numbers (the crowd merges them)."""

        async def read() -> dict:
            connected = [v for v in self.viewers if v.sio.connected]
            return {
                "delays_ms": [round(d * 1000, 2) for v in self.viewers for d in v.delays],
                "lags_ms": [round(lag * 1000, 2) for lag in self.lags],
                "counts": [v.count for v in self.viewers],
                "connected": len(connected),
                "failed": len(self.failed),
                "failures": self.failed[:3],
                "transports": [v.transport or "?" for v in connected],
                "processes": [v.process or "the page's own process" for v in connected],
            }

        return self._run(read())

    def close(self) -> dict:
        async def close_all() -> None:
            await asyncio.gather(*(v.close() for v in self.viewers), return_exceptions=True)

        try:
            self._run(close_all(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        return {}


def tally(names: list[str]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for name in names:
        counted[name] = counted.get(name, 0) + 1
    return counted


def merge(windows: list[dict]) -> dict:
    """The figures of a window, over every room of the crowd."""
    delays = sorted(d for w in windows for d in w["delays_ms"])
    lags = sorted(lag for w in windows for lag in w["lags_ms"])
    counts = [c for w in windows for c in w["counts"]]

    def pick(values: list[float], share: float) -> float | None:
        return round(percentile(values, share), 1) if values else None

    return {
        "viewers_connected": sum(w["connected"] for w in windows),
        "viewers_failed": sum(w["failed"] for w in windows),
        "failures": [f for w in windows for f in w["failures"]][:3],
        "transports": tally([t for w in windows for t in w["transports"]]),
        "viewers_by_process": tally([p for w in windows for p in w["processes"]]),
        "batches_min_per_viewer": min(counts) if counts else 0,
        "batches_max_per_viewer": max(counts) if counts else 0,
        "delivery_samples": len(delays),
        "delivery_p50_ms": pick(delays, 50),
        "delivery_p95_ms": pick(delays, 95),
        "delivery_max_ms": delays[-1] if delays else None,
        "viewer_loop_lag_p95_ms": pick(lags, 95),
    }


class Crowd:
    """Viewers spread evenly over `rooms` processes, steered together."""

    def __init__(self, url: str, rooms: int) -> None:
        argv = [sys.executable, "-m", "lab.bench.crowd", url]
        self.children = [
            subprocess.Popen(
                tethered(argv),  # dies with the benchmark, even if it is SIGKILLed
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(rooms)
        ]

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def _all(self, commands: list[dict]) -> list[dict]:
        """Send each room its command, then read every answer (the rooms work side by side)."""
        for child, command in zip(self.children, commands, strict=True):
            assert child.stdin is not None
            child.stdin.write(json.dumps(command) + "\n")
            child.stdin.flush()
        answers = []
        for child in self.children:
            assert child.stdout is not None
            line = child.stdout.readline()
            if not line:
                raise RuntimeError(f"a viewer process (pid {child.pid}) exited")
            answers.append(json.loads(line))
        return answers

    def grow(self, count: int) -> None:
        rooms = len(self.children)
        shares = [count // rooms + (1 if i < count % rooms else 0) for i in range(rooms)]
        self._all([{"do": "grow", "count": share} for share in shares])

    def start_window(self) -> None:
        self._all([{"do": "start_window"}] * len(self.children))

    def window(self) -> dict:
        return merge(self._all([{"do": "window"}] * len(self.children)))

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            self._all([{"do": "close"}] * len(self.children))
        for child in self.children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def main(url: str) -> int:
    """One room: obey one JSON command per line on stdin, answer one per line on stdout."""
    room = Room(url)
    actions: dict[str, Any] = {
        "grow": lambda command: room.grow(command["count"]),
        "start_window": lambda command: room.start_window(),
        "window": lambda command: room.window(),
        "close": lambda command: room.close(),
    }
    for line in sys.stdin:
        command = json.loads(line)
        print(json.dumps(actions[command["do"]](command)), flush=True)
        if command["do"] == "close":
            return 0
    room.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
