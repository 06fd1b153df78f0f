"""The viewer count over real processes: `lb-lab serve --classroom` and a second front
(`lb-lab web --lab URL --classroom`) add up their viewers in the lab service, and a front
that dies stops counting."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import Http, RawSocketIO, wait_for

from lab.web.room import STALE_S


def start(args: list[str], ready: str) -> tuple[subprocess.Popen, str]:
    """Start `python -m lab ARGS`; return it and what it printed up to the line with `ready`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    assert process.stdout is not None
    for line in process.stdout:
        output += line
        if ready in line:
            return process, output
    process.kill()
    raise AssertionError(f"{args[0]} did not start:\n{output}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def classroom() -> Iterator[tuple[str, str]]:
    """A classroom lab: its viewers' URL and its service's address."""
    process, output = start(
        ["serve", "--classroom", "--port", "0", "--paused", "--balancer-port", "0",
         "--backend-port", "0"],
        "Press Ctrl-C",
    )  # fmt: skip
    try:
        page = re.search(r"viewers:\s+http://(\S+)/", output)
        service = re.search(r"service:\s+http://(\S+)/", output)
        assert page and service, output
        yield page.group(1), service.group(1)
    finally:
        stop(process)


def viewers(service: str) -> int:
    client = Http(service)
    try:
        return client.json("GET", "/state")[1]["classroom"]["viewers"]
    finally:
        client.close()


def test_two_fronts_add_up_their_viewers_and_a_dead_front_stops_counting(classroom):
    page, service = classroom
    front, said = start(
        ["web", "--lab", f"http://{service}/", "--port", "0", "--classroom"], "Press Ctrl-C"
    )
    pages = []
    try:
        second = re.search(r"viewers:\s+http://(\S+)/", said)
        assert second, said
        pages = [RawSocketIO(page), RawSocketIO(page), RawSocketIO(second.group(1))]
        wait_for(lambda: viewers(service) == 3, 10, what="3 viewers over two fronts")
        front.send_signal(signal.SIGKILL)  # it cannot say goodbye: the lab must notice
        front.wait(10)
        wait_for(lambda: viewers(service) == 2, STALE_S + 5, what="the dead front's viewer gone")
        pages[0].close()
        wait_for(lambda: viewers(service) == 1, 10, what="a viewer who left")
    finally:
        stop(front)
