"""Layer 7 WebSockets: a real `websockets` server behind the balancer, real clients in front."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from conftest import Lab, RawBackend, split, wait_for
from test_vocabulary import problems

from lab.supervisor import Supervisor

websockets_sync = pytest.importorskip("websockets.sync.client")
ConnectionClosed = pytest.importorskip("websockets.exceptions").ConnectionClosed

# A tiny echo server in its own process, so a test can kill it mid-tunnel (SIGKILL: no
# close frame, no FIN courtesy beyond what the kernel does). It prints its port, then serves.
ECHO = """
import asyncio, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


@pytest.fixture
def echo():
    process = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline())
        yield process, f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture
def lab(echo):
    with Supervisor() as supervisor:
        lab = Lab(supervisor)
        lab.backends["ws"] = echo[1]
        lab.start_balancer()
        lab.configure(timeouts={"client_header_ms": 500})
        yield lab
        for reader in lab._readers:
            reader.close()


def connect(lab):
    # No compression: the bytes counted in the done event are then the messages' own.
    return websockets_sync.connect(
        f"ws://{lab.listen}/chat", open_timeout=5, close_timeout=2, compression=None
    )


def test_messages_pass_both_ways(lab):
    events = lab.events()
    with connect(lab) as ws:
        for text in ["hello", "x" * 100_000, "last"]:
            ws.send(text)
            assert ws.recv(timeout=5) == text
        route = events.wait("route", upgrade="websocket")
        assert route["backend"] == "ws" and route["method"] == "GET" and route["path"] == "/chat"
        assert events.of("done", id=route["id"]) == []  # a live tunnel is not done
    done = events.wait("done", id=route["id"])
    # The client began the closing handshake; the server closes TCP first (RFC 6455 7.1.1).
    assert done["status"] == 101 and done["reason"] == "ws closed the connection first"
    # Bytes each way: the three messages (framed; the client's are masked) and the handshake.
    assert 100_000 < done["bytes"] < 101_000 and 100_000 < done["bytes_up"] < 101_000
    assert [p for event in events.events for p in problems(event)] == []


def test_tunnel_survives_other_traffic(lab):
    with connect(lab) as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        for _ in range(20):  # ordinary requests on other connections, refused or not
            with socket.create_connection(split(lab.listen), timeout=3) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert sock.recv(100).startswith(b"HTTP/1.1 ")
        ws.send("after")
        assert ws.recv(timeout=5) == "after"


def test_killed_backend_closes_tunnel_with_done_and_reason(lab, echo):
    events = lab.events()
    with connect(lab) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        route = events.wait("route", upgrade="websocket")
        assert lab.backend_state("ws")["active"] == 1  # least connections sees the tunnel
        echo[0].kill()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        done = events.wait("done", id=route["id"])
    assert done["reason"] in ("ws closed the connection first", "ws reset the connection"), done
    wait_for(lambda: lab.backend_state("ws")["active"] == 0, what="the tunnel no longer counted")


def test_slowloris_during_upgrade_is_cut_off(lab):
    """An upgrade head trickled one header at a time gets the 408, as any request head does."""
    with socket.create_connection(split(lab.listen), timeout=5) as sock:
        sock.sendall(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n")
        sock.sendall(b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n")
        start = time.monotonic()
        sock.settimeout(0.1)
        got = b""
        while time.monotonic() - start < 4 and not got:
            try:
                got = sock.recv(1000)
            except TimeoutError:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")  # trickle another header
                except OSError:
                    break
    assert got.startswith(b"HTTP/1.1 408"), got
    assert time.monotonic() - start < 4


def test_idle_timeout_closes_silent_tunnel(lab):
    lab.configure(timeouts={"tunnel_idle_ms": 300})
    events = lab.events()
    with connect(lab) as ws:
        ws.send("one")
        assert ws.recv(timeout=5) == "one"
        route = events.wait("route", upgrade="websocket")
        done = events.wait("done", id=route["id"], timeout=5)
        assert done["reason"] == "nothing crossed the tunnel for 300 ms (timeouts.tunnel_idle_ms)"
        assert 300 <= done["ms"] < 3000
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=3)


@pytest.mark.parametrize("status", [b"400 Bad Request", b"200 OK"])
def test_refused_upgrade_is_an_ordinary_response(status):
    backend = RawBackend(lambda request: b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nno")
    try:
        with Supervisor() as supervisor:
            lab = Lab(supervisor)
            lab.backends["raw"] = backend.address
            lab.start_balancer()
            with socket.create_connection(split(lab.listen), timeout=5) as sock:
                sock.sendall(
                    b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                    b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                )
                got = b""
                while not got.endswith(b"no") and (chunk := sock.recv(1000)):
                    got += chunk
            assert got.startswith(b"HTTP/1.1 " + status)
            sent = backend.requests[0].lower()
            assert b"upgrade: websocket" in sent and b"connection: upgrade" in sent
    finally:
        backend.close()


def test_h2c_and_connect_still_501(lab):
    for request in [
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    ]:
        with socket.create_connection(split(lab.listen), timeout=5) as sock:
            sock.sendall(request)
            assert sock.recv(1000).startswith(b"HTTP/1.1 501")
