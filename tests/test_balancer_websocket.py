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


def handshake(path: str = "/chat", extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return (
        method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + extra + b"\r\n"
    )


def test_a_rule_on_the_upgrade_header_and_a_sticky_cookie_route_the_handshake(echo):
    """HAProxy's classic `acl is_ws hdr(Upgrade) -i websocket`: WebSockets to their own pool."""
    plain = RawBackend(lambda request: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")
    try:
        with Supervisor() as supervisor:
            lab = Lab(supervisor)
            lab.backends.update(ws=echo[1], plain=plain.address)
            lab.start_balancer()
            lab.configure(
                pools=[{"name": "live", "backends": ["ws"]}],
                rules=[{"name": "sockets", "header": "upgrade:websocket", "pool": "live"}],
                sticky={"mode": "cookie"},
            )
            events = lab.events()
            with connect(lab) as ws:
                assert ws.response.headers["Set-Cookie"].startswith("SERVERID=ws;")
                ws.send("routed")
                assert ws.recv(timeout=5) == "routed"
                route = events.wait("route", upgrade="websocket")
            assert (route["rule"], route["pool"], route["backend"]) == ("sockets", "live", "ws")
            # An ordinary request matches no rule: the default pool, which plain is in.
            with socket.create_connection(split(lab.listen), timeout=5) as sock:
                sock.sendall(b"GET /chat HTTP/1.1\r\nHost: x\r\nCookie: SERVERID=plain\r\n\r\n")
                assert sock.recv(1000).endswith(b"plain")
            events.close()
    finally:
        plain.close()


def test_a_handshake_is_never_sent_twice(lab):
    """Backends that take the handshake and close without a word: one try, then a 502."""
    silent = [RawBackend(lambda request: None) for _ in range(2)]
    try:
        lab.configure(
            backends=[{"name": f"s{i}", "address": b.address} for i, b in enumerate(silent)],
            retries={"tries": 3},
        )
        with socket.create_connection(split(lab.listen), timeout=5) as sock:
            sock.sendall(handshake())
            reply = sock.recv(1000)
        assert reply.startswith(b"HTTP/1.1 502") and b"not retried" in reply, reply
        assert sum(len(b.requests) for b in silent) == 1
    finally:
        for backend in silent:
            backend.close()


def test_bytes_sent_with_the_handshake_reach_the_backend_first(lab):
    """A client may send its first frame with the handshake; it waits for the tunnel."""
    frame = b"\x81\x82abcd" + bytes(x ^ y for x, y in zip(b"hi", b"abcd", strict=False))
    with socket.create_connection(split(lab.listen), timeout=5) as sock:
        sock.sendall(handshake() + frame)
        got = b""
        while not got.endswith(b"hi"):
            got += sock.recv(1000)
    assert got.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert got.endswith(b"\r\n\r\n\x81\x02hi")  # the echo, unmasked, right after the 101


def test_a_client_that_leaves_ends_the_tunnel(lab):
    events = lab.events()
    sock = socket.create_connection(split(lab.listen), timeout=5)
    sock.sendall(handshake())
    assert sock.recv(1000).startswith(b"HTTP/1.1 101")
    route = events.wait("route", upgrade="websocket")
    sock.close()  # no closing handshake: the TCP connection just ends
    done = events.wait("done", id=route["id"])
    assert done["reason"] in (
        "the client closed the connection first",
        "the client reset the connection",
    )
    wait_for(lambda: lab.backend_state("ws")["active"] == 0, what="the tunnel no longer counted")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (handshake(method=b"POST", extra=b"Content-Length: 0\r\n"), b"400"),
        (handshake(extra=b"Content-Length: 3\r\n") + b"abc", b"400"),
        (handshake().replace(b"HTTP/1.1", b"HTTP/1.0"), b"400"),
        (handshake().replace(b"Upgrade: websocket", b"Upgrade: chat"), b"501"),
    ],
    ids=["post", "body", "http-1.0", "other-protocol"],
)
def test_a_bad_handshake_is_refused_before_routing(lab, request_bytes, status):
    events = lab.events()
    with socket.create_connection(split(lab.listen), timeout=5) as sock:
        sock.sendall(request_bytes)
        assert sock.recv(1000).startswith(b"HTTP/1.1 " + status)
    events.wait("error", status=int(status))
    assert events.of("route") == [] and lab.backend_state("ws")["total"] == 0


def test_a_backend_that_stops_reading_stops_the_client(lab):
    """Backpressure: the balancer holds a bounded amount for a backend that reads nothing,
    and every byte arrives once it reads again."""
    server = socket.create_server(("127.0.0.1", 0))
    lab.configure(backends=[{"name": "stuck", "address": f"127.0.0.1:{server.getsockname()[1]}"}])
    client = socket.create_connection(split(lab.listen), timeout=5)
    client.sendall(handshake())
    backend, _ = server.accept()
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += backend.recv(1)
    backend.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                    b"Upgrade: websocket\r\n\r\n")  # fmt: skip
    assert client.recv(1000).startswith(b"HTTP/1.1 101")
    client.setblocking(False)
    chunk, sent, stalled_since = b"z" * 65536, 0, None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sent < 512 * 1024 * 1024:
        try:
            sent += client.send(chunk)
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 1.0:
                break  # a second without taking a byte: the client is held back
            time.sleep(0.01)
    assert stalled_since is not None, f"the client sent {sent} bytes and was never held back"
    assert sent < 64 * 1024 * 1024  # kernel buffers on both hops, and no more
    client.setblocking(True)
    client.shutdown(socket.SHUT_WR)
    received = 0
    backend.settimeout(10)
    while chunk := backend.recv(1 << 20):
        received += len(chunk)
        if received >= sent:
            break
    assert received == sent
    for sock in (client, backend, server):
        sock.close()


def test_least_connections_counts_open_tunnels_to_toy_backends():
    """Each toy backend echoes WebSockets at /ws; a tunnel keeps its backend busy."""
    with Supervisor() as supervisor:
        lab = Lab(supervisor)
        for name in ("b1", "b2", "b3"):
            lab.start_backend(name)
        lab.start_balancer("--algorithm", "least-connections")
        events = lab.events()
        url = f"ws://{lab.listen}/ws"
        with (
            websockets_sync.connect(url, open_timeout=5) as first,
            websockets_sync.connect(url, open_timeout=5) as second,
        ):
            held = {first.response.headers["X-Backend"], second.response.headers["X-Backend"]}
            assert len(held) == 2  # the second went where no tunnel was
            client = socket.create_connection(split(lab.listen), timeout=5)
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = client.recv(65536)
            client.close()
            (free,) = {"b1", "b2", "b3"} - held
            assert f'"backend":"{free}"'.encode() in answer  # the one backend with nothing open
            assert sorted(b["active"] for b in lab.state()["backends"]) == [0, 1, 1]
            wait_for(lambda: len(events.of("route", upgrade="websocket")) == 2, what="2 routes")
            routes = events.of("route", upgrade="websocket")
            assert [r["backend"] for r in routes] == [
                first.response.headers["X-Backend"],
                second.response.headers["X-Backend"],
            ]
        wait_for(lambda: all(b["active"] == 0 for b in lab.state()["backends"]), what="closed")
        events.close()
