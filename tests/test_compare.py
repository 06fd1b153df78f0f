"""A comparison with real processes: `lb-lab service --compare`, two balancers, one traffic.

Round robin on the left, least connections on the right, b1 slowed on both by
one command. Each balancer's own event stream says what it was sent: the same
requests from the same clients, each client's in the same order, and least
connections keeps the tail short.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest
from conftest import EventReader, Http, split, wait_for
from jsonschema import Draft202012Validator

from lab.vocabulary import messages as vocabulary

LAB = ["--paused", "--backends", "3", "--balancer-port", "0", "--backend-port", "0"]
COMPARE = ["--compare", "round-robin,least-connections", "--seed", "11"]


@pytest.fixture(scope="module")
def service():
    """The lab service's API address, for a comparison opened on its command line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "service", "--api", "127.0.0.1:0", *LAB, *COMPARE],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = ""
    try:
        for line in process.stdout:
            output += line
            if "lab service: http://" in line:
                yield line.split("http://", 1)[1].split("/", 1)[0]
                break
        else:
            raise AssertionError(f"lb-lab service ended before it was ready:\n{output}")
    finally:
        process.terminate()
        process.wait(15)


def post(api: Http, data: dict) -> dict:
    body = json.dumps(data)
    status, _, answer = api.request(
        "POST", "/command", body=body, headers={"Content-Type": "application/json"}
    )
    assert status == 200, answer
    return json.loads(answer)


def command(api: Http, **data) -> dict:
    answer = post(api, data)
    assert answer == {"ok": True}, answer
    return answer


def routes(reader: EventReader) -> list[tuple[str, str, str]]:
    """(client address, method, path) of every request the balancer routed, in its order."""
    return [(e["client"], e["method"], e["path"]) for e in reader.of("route")]


class StreamReader(EventReader):
    """The lab service's GET /stream, read on a thread: {"name", "data"} lines."""

    def __init__(self, address: str) -> None:
        self.sock = socket.create_connection(split(address), timeout=30)
        self.sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def of_names(self) -> list[dict]:
        with self.lock:
            return list(self.events)


def by_client(seen: list[tuple[str, str, str]]) -> dict[str, list[tuple[str, str]]]:
    order: dict[str, list[tuple[str, str]]] = {}
    for client, method, path in seen:
        order.setdefault(client, []).append((method, path))
    return order


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone, only not reaped yet
            if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                alive.append(pid)
    return alive


def test_same_traffic_compared(service):
    api = Http(service, timeout=60)
    state = api.json("GET", "/state")[1]
    right = state["compare"]["right"]
    assert (state["algorithm"], right["algorithm"]) == ("round-robin", "least-connections")
    assert state["compare"]["seed"] == 11
    ours = {b["address"] for b in state["backends"]}
    theirs = {b["address"] for b in right["backends"]}
    assert len(ours | theirs) == 6  # the sides share no backend

    command(api, action="set_latency", name="b1", latency_ms=400)  # once: both sides slow
    command(api, action="set_traffic", rate=80, clients=16)
    state = api.json("GET", "/state")[1]
    right = state["compare"]["right"]
    for side in (state, right):
        assert [b["latency_ms"] for b in side["backends"]] == [400, 0, 0]
    left_events = EventReader(state["balancer"]["admin"])
    right_events = EventReader(right["balancer"]["admin"])
    stream = StreamReader(service)
    try:
        wait_for(lambda: left_events.sock and right_events.sock, what="both event readers")
        command(api, action="reset")
        command(api, action="resume")

        def sent() -> int:
            return api.json("GET", "/state")[1]["counters"]["traffic"]["sent"]

        wait_for(lambda: sent() >= 500, timeout=60, interval=0.2, what="500 requests sent")
        command(api, action="pause")

        def settled() -> dict | None:
            now = api.json("GET", "/state")[1]
            sides = (now["counters"], now["compare"]["right"]["counters"])
            done = all(c["traffic"]["in_flight"] == 0 and c["active"] == 0 for c in sides)
            return now if done else None

        final = wait_for(settled, timeout=30, what="every answer in on both sides")
    finally:
        left_events.close()
        right_events.close()
        stream.close()

    left, right = final["counters"], final["compare"]["right"]["counters"]
    assert left["traffic"]["sent"] == right["traffic"]["sent"] >= 500
    assert left["total"] == right["total"] == left["traffic"]["sent"]
    # Each balancer saw the same requests, from the same clients, in the same order.
    seen_left, seen_right = routes(left_events), routes(right_events)
    assert len(seen_left) == len(seen_right) == left["total"]
    assert len({client for client, _, _ in seen_left}) == 16
    assert sorted(seen_left) == sorted(seen_right)
    # Each client's requests reached both balancers in the same order. (Between clients, two
    # arrivals a fraction of a millisecond apart can swap at a balancer: one side may need a
    # new TCP connection for the first, where the other reuses an idle one.)
    assert by_client(seen_left) == by_client(seen_right)
    # Round robin gives slow b1 a third; least connections sends it less, so p95 is lower.
    assert left["backends"]["b1"]["total"] >= left["total"] // 3
    shares = (left["backends"]["b1"]["total"], right["backends"]["b1"]["total"])
    assert shares[1] < shares[0] / 2, shares
    left_p95 = left["traffic"]["distribution"]["p95"]
    right_p95 = right["traffic"]["distribution"]["p95"]
    assert left_p95 >= 400 and right_p95 < left_p95, (left_p95, right_p95)

    # The stream said it all in declared words, each batch naming its side.
    messages = stream.of_names()
    check = {name: Draft202012Validator(getattr(vocabulary, name)()) for name in ("state", "batch")}
    mistakes = [
        f"{m['name']}: {'/'.join(map(str, e.path))}: {e.message}"
        for m in messages
        for e in check[m["name"]].iter_errors(m["data"])
    ]
    assert mistakes == []
    sides = {m["data"].get("side") for m in messages if m["name"] == "batch"}
    assert sides == {"left", "right"}
    assert any(m["data"]["compare"] for m in messages if m["name"] == "state")


def test_leaving_the_comparison_stops_the_right_sides_processes(service):
    api = Http(service, timeout=60)
    command(api, action="kill_backend", name="b3")  # a crash on the left is one on the right
    right = api.json("GET", "/state")[1]["compare"]["right"]
    assert [b["process"] for b in right["backends"]] == ["running", "running", "killed"]
    command(api, action="restart_backend", name="b3")

    state = api.json("GET", "/state")[1]
    assert all(b["process"] == "running" for b in state["compare"]["right"]["backends"])
    right_addresses = {b["address"] for b in state["compare"]["right"]["backends"]}
    children = api.json("GET", "/lab")[1]["children"]
    left_pids = [c["pid"] for c in children if c["name"] != "traffic"]
    traffic_pid = next(c["pid"] for c in children if c["name"] == "traffic")
    # The right side's children are the service's too; find them by their listening ports.
    service_pid = api.json("GET", "/lab")[1]["pid"]
    everyone = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(service_pid)], capture_output=True, text=True
    ).stdout.split()
    right_pids = [int(pid) for pid in everyone if int(pid) not in [*left_pids, traffic_pid]]
    assert len(right_pids) == 4  # three backends and a balancer
    assert right_addresses

    command(api, action="end_compare")
    assert api.json("GET", "/state")[1]["compare"] is None
    wait_for(lambda: pids_alive(right_pids) == [], timeout=10, what="the right side gone")
    assert pids_alive(left_pids) == left_pids
    # The traffic generator that sent to both sides is replaced by one that sends to ours.
    wait_for(lambda: pids_alive([traffic_pid]) == [], timeout=10, what="the old generator gone")
    answer = post(api, {"action": "end_compare"})
    assert answer == {"ok": False, "error": "no comparison is open"}
    answer = post(api, {"action": "set_algorithm", "algorithm": "random", "side": "right"})
    assert not answer["ok"] and "no comparison is open" in answer["error"]
    # A new comparison's numbers are read after the last one's: a page keeps the newer counters
    # by their reading number (`read`), so the new right side's must not start again from 1.
    last_read = state["compare"]["right"]["counters"]["read"]
    command(api, action="compare", right={"algorithm": "random"})
    again = api.json("GET", "/state")[1]["compare"]["right"]
    assert again["algorithm"] == "random"
    assert again["counters"]["read"] > last_read
    command(api, action="end_compare")
    # The traffic goes on, to the one side left.
    command(api, action="send", count=5)
    wait_for(
        lambda: api.json("GET", "/state")[1]["counters"]["traffic"]["completed"] >= 5,
        what="five answered",
    )
