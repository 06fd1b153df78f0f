"""The web front's link to a lab service: it follows the stream, reconnects, and keeps the
latest state for the browsers that connect; against a small NDJSON server on loopback."""

from __future__ import annotations

import json
import socket
import threading

from conftest import wait_for

from lab.web.link import ServiceLink, folded, service_address
from lab.web.relay import HISTORY_S

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n"


def state(read: int) -> dict:
    backend = {"name": "b1", "process": "running", "state": "up", "total": 0, "weight": 1}
    return {
        "backends": [backend],
        "counters": {"read": read, "total": 0, "backends": {"b1": {"state": "up", "total": 0}}},
        "latency_history": [],
    }


def batch(read: int, total: int, latency: list | None = None) -> dict:
    counters = {"read": read, "total": total, "backends": {"b1": {"state": "down", "total": total}}}
    return {"events": [], "counters": counters, "latency": latency or []}


class BrokenStream:
    """A lab service whose stream sends a state and one batch, then breaks, every time."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.streams = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                self.streams += 1
                n = self.streams
                lines = [{"name": "state", "data": state(10 * n)},
                         {"name": "batch", "data": batch(10 * n + 1, n)}]  # fmt: skip
                conn.sendall(HEAD + b"".join(json.dumps(m).encode() + b"\n" for m in lines))

    def close(self) -> None:
        self.server.close()


def test_a_broken_stream_is_followed_again_from_a_full_state():
    service = BrokenStream()
    link = ServiceLink(service.address)
    got: list[tuple[str, int]] = []
    link.attach(lambda name, data: got.append((name, data["counters"]["read"])), _task, _nap)
    try:
        wait_for(lambda: len(got) >= 6, what="three streams")
    finally:
        link.close()
        service.close()
    assert got[:6] == [("state", 10), ("batch", 11), ("state", 20), ("batch", 21),
                       ("state", 30), ("batch", 31)]  # fmt: skip


def _task(target, *args) -> None:
    threading.Thread(target=target, args=args, daemon=True).start()


def _nap(seconds: float) -> None:
    threading.Event().wait(seconds)


def test_the_latest_state_has_every_later_batch_folded_in():
    latest = folded(state(5), batch(6, 3, [{"t": 1, "n": 3, "p50": 1.0, "p95": 2.0}]))
    assert latest["counters"]["read"] == 6 and latest["counters"]["total"] == 3
    assert latest["backends"][0] | {} == {**state(5)["backends"][0], "state": "down", "total": 3}
    assert latest["latency_history"] == [{"t": 1, "n": 3, "p50": 1.0, "p95": 2.0}]
    # counters read before the state's are older: the state keeps its own
    assert folded(state(9), batch(8, 1))["counters"]["read"] == 9
    # the chart keeps its last minute
    long = state(1) | {"latency_history": [{"t": t} for t in range(HISTORY_S)]}
    assert folded(long, batch(2, 0, [{"t": 99}]))["latency_history"][-1] == {"t": 99}
    assert len(folded(long, batch(2, 0, [{"t": 99}]))["latency_history"]) == HISTORY_S


def test_a_killed_backend_keeps_its_fate_in_the_latest_state():
    dead = state(1)
    dead["backends"][0] |= {"process": "killed", "state": "killed"}
    assert folded(dead, batch(2, 0))["backends"][0]["state"] == "killed"


def test_the_service_url_is_read_as_the_lab_prints_it():
    assert service_address("http://127.0.0.1:7000/") == "127.0.0.1:7000"
    assert service_address("[::1]:7000") == "[::1]:7000"
    for bad in ("http://127.0.0.1:7000/stream", "127.0.0.1", "127.0.0.1:0", "http://host:x/"):
        try:
            service_address(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was taken")


def test_a_page_that_connects_later_gets_the_newest_classroom():
    from lab.web.link import latest

    room = {"viewers": 4, "position": {"lesson": "round-robin"}}
    newer = latest(state(5) | {"classroom": {"viewers": 0}}, "classroom", room)
    assert newer["classroom"] == room and newer["counters"] == state(5)["counters"]
    assert latest(None, "classroom", room) is None  # no state yet: the stream brings one
    assert latest(newer, "batch", batch(6, 3))["classroom"] == room  # a batch keeps it
