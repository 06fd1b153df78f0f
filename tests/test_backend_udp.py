"""A real toy backend process answering UDP: name and count, and the same knobs as HTTP."""

from __future__ import annotations

import json
import socket
import time

import pytest
from conftest import Http, split

from lab.supervisor import Supervisor


@pytest.fixture(scope="module")
def backend():
    with Supervisor() as supervisor:
        child = supervisor.start("u1", ["backend", "--name", "u1", "--udp-port", "0"])
        yield child.addresses


@pytest.fixture
def ask(backend):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)

    def exchange(data: bytes, timeout: float = 2.0) -> dict:
        sock.settimeout(timeout)
        sock.sendto(data, split(backend["udp"]))
        return json.loads(sock.recvfrom(2000)[0])

    yield exchange
    sock.close()
    control = Http(backend["listen"])
    control.json("PUT", "/_lab/knobs", {"latency_ms": 0, "error_rate": 0, "healthy": True})
    control.json("POST", "/_lab/reset")
    control.close()


def knobs(backend, **values) -> None:
    status, answer = Http(backend["listen"]).json("PUT", "/_lab/knobs", values)
    assert status == 200, answer


def test_udp_port_zero_picks_its_own_port(backend):
    assert backend["udp"] != backend["listen"]


def test_each_datagram_is_answered_with_the_name_and_a_count(ask):
    first, second = ask(b"one"), ask(b"two")
    assert (first["backend"], first["served"], first["got"], first["bytes"]) == ("u1", 1, "one", 3)
    assert second["served"] == 2 and second["client"].startswith("127.0.0.1:")


def test_latency_delays_the_reply(backend, ask):
    knobs(backend, latency_ms=150)
    started = time.monotonic()
    ask(b"slow")
    assert time.monotonic() - started >= 0.15


def test_an_error_is_a_lost_reply(backend, ask):
    knobs(backend, error_rate=1)
    with pytest.raises(TimeoutError):
        ask(b"lost", timeout=0.3)
    _, state = Http(backend["listen"]).json("GET", "/_lab/state")
    assert state["counters"]["errors"] == 1 and state["counters"]["datagrams"] == 1


def test_the_health_probe_says_what_the_healthy_knob_says(backend, ask):
    assert ask(b"health") == {"backend": "u1", "healthy": True}
    knobs(backend, healthy=False, latency_ms=500)  # the probe is answered at once anyway
    assert ask(b"health", timeout=0.3) == {"backend": "u1", "healthy": False}
    _, state = Http(backend["listen"]).json("GET", "/_lab/state")
    assert state["counters"]["health_checks"] == 2 and state["counters"]["served"] == 0


def test_a_backend_on_port_0_skips_a_port_whose_udp_twin_is_taken():
    """The kernel's pick for TCP can have its UDP twin in use by another process; the
    backend then takes another port rather than fail to start (seen in the lab)."""
    import argparse
    import asyncio

    from lab.backend.app import ToyBackend
    from lab.backend.knobs import Knobs
    from lab.backend.server import bind

    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    busy = taken.getsockname()[1]
    options = argparse.Namespace(host="127.0.0.1", port=0, udp_port=None, proxy_protocol=False)

    async def start() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        pick = loop.create_server
        picks: list[int] = []

        async def kernel_picks_the_busy_port_first(factory, host, port, **kwargs):
            picks.append(port)
            return await pick(factory, host, busy if len(picks) == 1 else port, **kwargs)

        loop.create_server = kernel_picks_the_busy_port_first  # type: ignore[method-assign]
        server, datagrams = await bind(loop, ToyBackend("b1", Knobs()), options)
        ports = server.sockets[0].getsockname()[1], datagrams.get_extra_info("sockname")[1]
        server.close()
        datagrams.close()
        assert picks == [0, 0]  # one more pick of a free port
        return ports

    try:
        tcp, udp = asyncio.run(start())
    finally:
        taken.close()
    assert tcp == udp != busy
