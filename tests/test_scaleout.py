"""Many viewers: `lb-lab serve --classroom --web-workers 2 --message-queue redis://...`.

Real processes throughout: a real redis-server on a free port, the lab as a
subprocess (its service, two web processes and the lab's own balancer in front
of them), and python-socketio clients connecting through that balancer, by long
polling and by WebSocket where the balancer tunnels it (until it does, a client
that asks for the upgrade stays on polling, which the sticky cookie makes work).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading

import pytest
from conftest import wait_for

from lab.bench.redis_server import RedisServer
from lab.bench.viewers import Viewer, wait_until
from lab.web import presenter

pytest.importorskip("redis")
pytest.importorskip("aiohttp")

START_S = 90.0  # a busy machine: the service, two web processes and a balancer


@pytest.fixture(scope="module")
def redis_url():
    with RedisServer() as server:
        yield server.url


class ScaledLab:
    """`lb-lab serve --classroom --web-workers 2 --message-queue URL`, as a user starts it."""

    def __init__(self, queue: str, *extra: str) -> None:
        argv = [sys.executable, "-m", "lab", "serve", "--classroom", "--web-workers", "2"]
        argv += ["--message-queue", queue, "--port", "0", "--balancer-port", "0"]
        argv += ["--backend-port", "0", "--rate", "40", *extra]
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(lambda: self.said("Press Ctrl-C") or self.process.poll() is not None, START_S)
        assert self.process.poll() is None, self.output()
        self.viewer_url = self.find(r"viewers:\s+(http://\S+)")
        self.token = self.find(r"presenter: http://\S+\?key=(\S+)")
        self.front_admin = self.find(r"curl http://(\S+)/state\s+# the lab balancing")
        self.workers = {
            name: int(pid) for name, pid in re.findall(r"(w\d) \S+ \(pid (\d+)\)", self.output())
        }

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def said(self, text: str) -> bool:
        return text in self.output()

    def find(self, pattern: str) -> str:
        found = re.search(pattern, self.output())
        assert found, f"{pattern!r} not in:\n{self.output()}"
        return found.group(1)

    def pids(self) -> set[int]:
        """Every process below the lab (its service, web processes, balancers, backends)."""
        from lab.bench.procs import descendants

        return descendants(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def scaled(redis_url):
    lab = ScaledLab(redis_url)
    try:
        yield lab
    finally:
        lab.stop()


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario, 120))


async def viewers_on_both(url: str, transports: list[str] | None) -> list[Viewer]:
    """Connect viewers until the balancer has put at least one on each web process."""
    viewers: list[Viewer] = []
    while {v.process for v in viewers} != {"w1", "w2"}:
        assert len(viewers) < 8, f"the balancer put every viewer on {viewers[0].process}"
        viewers.append(await Viewer(url, transports=transports, order=True).connect())
    return viewers


def overlap(first: list[str], second: list[str]) -> list[str]:
    """The run of batches both received: `second`'s first batch onwards, as found in `first`."""
    start = first.index(second[0]) if second and second[0] in first else None
    assert start is not None, "the later viewer's first batch never reached the earlier one"
    return first[start : start + len(second)]


def test_the_lab_says_it_balances_its_own_viewers(scaled):
    assert "2 processes behind the lab's own balancer" in scaled.output()
    assert set(scaled.workers) == {"w1", "w2"}
    state = _get_json(scaled.front_admin, "/state")
    assert state["mode"] == "http"
    assert sorted(b["name"] for b in state["backends"]) == ["w1", "w2"]
    assert state["settings"]["sticky"]["mode"] == "cookie"


@pytest.mark.parametrize("transports", [["polling"], None], ids=["polling", "upgrade"])
def test_viewers_on_both_processes_see_the_same_batches_in_the_same_order(scaled, transports):
    async def scenario():
        viewers = await viewers_on_both(scaled.viewer_url, transports)
        try:
            # Long enough for dozens of batches at 40 req/s (one about every 50 ms).
            await wait_until(lambda: all(len(v.batches) >= 40 for v in viewers), 60)
            await asyncio.sleep(0.5)  # a batch on its way to one viewer reaches the others
            for viewer in viewers:
                assert len(viewer.batches) >= 40, f"{viewer.process}: {len(viewer.batches)}"
                assert len(set(viewer.batches)) == len(viewer.batches), "a batch came twice"
            one = next(v for v in viewers if v.process == "w1")
            other = next(v for v in viewers if v.process == "w2")
            early, late = sorted([one, other], key=lambda v: -len(v.batches))
            common = late.batches[: len(late.batches) - 5]  # the last few may be in flight
            assert overlap(early.batches, common) == common
            if transports == ["polling"]:
                assert {v.transport for v in viewers} == {"polling"}
        finally:
            for viewer in viewers:
                await viewer.close()

    run(scenario())


def presenter_on(scaled: ScaledLab, process: str) -> Viewer:
    """The presenter's browser, pinned to one web process by the balancer's own cookie."""
    cookies = {presenter.COOKIE: scaled.token, "LB_LAB_WEB": process}
    return Viewer(scaled.viewer_url, cookies=cookies)


def test_a_presenter_command_through_either_process_changes_the_lab_for_both(scaled):
    async def scenario():
        viewers = await viewers_on_both(scaled.viewer_url, None)
        presenters = [await presenter_on(scaled, name).connect() for name in ("w1", "w2")]
        try:
            assert [p.process for p in presenters] == ["w1", "w2"]
            refused = await viewers[0].command(action="set_algorithm", algorithm="random")
            assert refused["ok"] is False and "presenter" in refused["error"]
            for through, algorithm in zip(presenters, ["least-connections", "random"], strict=True):
                answer = await through.command(action="set_algorithm", algorithm=algorithm)
                assert answer == {"ok": True}, (through.process, answer)
                for viewer in viewers:
                    shown = await wait_until(
                        lambda v=viewer, a=algorithm: any(s["algorithm"] == a for s in v.states),
                        30,
                    )
                    assert shown, f"{viewer.process} never showed {algorithm} (via {through})"
            assert _get_json(scaled.front_admin, "/state")["backends"]  # still balancing
        finally:
            for client in [*viewers, *presenters]:
                await client.close()

    run(scenario())


def test_killing_a_web_process_loses_no_lab_state_and_its_viewers_move(scaled):
    async def scenario():
        viewers = await viewers_on_both(scaled.viewer_url, ["polling"])
        boss = await presenter_on(scaled, "w1").connect()
        try:
            answer = await boss.command(action="set_weight", name="b2", weight=5)
            assert answer == {"ok": True}
            moved = [v for v in viewers if v.process == "w2"]
            for viewer in moved:
                viewer.states.clear()
            os.kill(scaled.workers["w2"], signal.SIGKILL)
            back = await wait_until(
                lambda: all(v.process == "w1" and v.states and v.sio.connected for v in moved), 60
            )
            assert back, [(v.process, len(v.states), v.disconnects) for v in moved]
            for viewer in moved:
                assert viewer.disconnects >= 1
                weights = {b["name"]: b["weight"] for b in viewer.states[-1]["backends"]}
                assert weights["b2"] == 5  # the lab's state was in the service all along
                count = viewer.count
                assert await wait_until(lambda v=viewer, c=count: v.count > c + 5, 30)
        finally:
            for client in [*viewers, boss]:
                await client.close()
        assert "web process w2" in scaled.output() and "exited" in scaled.output()

    run(scenario())

    def w2_taken_out() -> bool:
        front = _get_json(scaled.front_admin, "/state")
        return next(b for b in front["backends"] if b["name"] == "w2")["healthy"] is False

    wait_for(w2_taken_out, 30, what="the lab's balancer to take the dead web process out")


def test_stopping_the_lab_stops_every_process_it_started(redis_url):
    lab = ScaledLab(redis_url, "--backends", "1")
    started = lab.pids()
    assert set(lab.workers.values()) <= started
    lab.stop()
    wait_for(lambda: not any(_alive(pid) for pid in started), 20, what="every child to exit")


def test_a_killed_lab_leaves_no_web_process_behind(redis_url):
    lab = ScaledLab(redis_url, "--backends", "1")
    started = lab.pids()
    assert set(lab.workers.values()) <= started  # the web processes are among them
    lab.process.kill()  # SIGKILL: no chance to stop anything itself
    lab.process.wait()
    wait_for(lambda: not any(_alive(pid) for pid in started), 20, what="every child to exit")


def test_web_workers_without_a_queue_is_a_clear_error():
    done = subprocess.run(
        [sys.executable, "-m", "lab", "serve", "--web-workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--web-workers 2 needs --message-queue" in done.stderr


def test_a_queue_nobody_listens_on_is_a_clear_error():
    with socket_closed_port() as port:
        done = subprocess.run(
            [sys.executable, "-m", "lab", "serve", "--web-workers", "2", "--port", "0",
             "--message-queue", f"redis://127.0.0.1:{port}/0"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot reach the message queue at redis://127.0.0.1:{port}/0" in done.stdout


@contextlib.contextmanager
def socket_closed_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]  # bound, never listening: connections are refused


def _alive(pid: int) -> bool:
    from lab.bench.procs import alive

    return alive(pid)


def _get_json(address: str, path: str) -> dict:
    from lab.bench.admin import get_json, split_address

    return get_json(*split_address(address), path)
