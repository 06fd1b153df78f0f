"""Layer 7 responses: exactly what the backend's framing says reaches the client, nothing more.

Misbehaving backends here are raw sockets that write exact bytes (conftest.RawBackend).
"""

from __future__ import annotations

import socket

import pytest
from conftest import Http, Lab, RawBackend, split, wait_for

from lab.supervisor import Supervisor

SECOND = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"


def reply_for(replies: dict[bytes, bytes]):
    """Answer by request line ("GET /a"); anything else gets SECOND."""

    def answer(request: bytes) -> bytes:
        method, target, _ = request.split(b" ", 2)
        return replies.get(method + b" " + target, SECOND)

    return answer


@pytest.fixture
def bare_lab():
    """A lab with no toy backends: the test brings its own raw ones."""
    with Supervisor() as supervisor:
        lab = Lab(supervisor)
        yield lab
        for reader in lab._readers:
            reader.close()


def start(lab: Lab, **backends: RawBackend) -> None:
    for name, backend in backends.items():
        lab.backends[name] = backend.address
    lab.start_balancer()


def balancer_output(lab: Lab) -> str:
    return "".join(lab.supervisor.children["balancer"].output)


SURPLUS_CASES = {
    "bytes after a Content-Length body": (
        b"GET /a",
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst!"
        b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\nX-Leftover: yes\r\n\r\n",
        b"first!",
    ),
    "a body after a HEAD response": (
        b"HEAD /a",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"",
    ),
    "a complete second response": (
        b"GET /a",
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst!"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra",
        b"first!",
    ),
    "a body after a 204": (b"GET /a", b"HTTP/1.1 204 No Content\r\n\r\nhello", b""),
    "a body after a 304": (b"GET /a", b"HTTP/1.1 304 Not Modified\r\n\r\nhello", b""),
    "bytes after the last chunk": (
        b"GET /a",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst!\r\n0\r\n\r\nBOGUS",
        b"first!",
    ),
    "bytes after a 100 Continue and a response": (
        b"GET /a",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst!junk",
        b"first!",
    ),
}


@pytest.mark.parametrize("case", SURPLUS_CASES)
def test_surplus_after_a_response_is_dropped_and_the_next_answer_is_the_right_one(bare_lab, case):
    request, reply, body = SURPLUS_CASES[case]
    backend = RawBackend(reply_for({request: reply}))
    start(bare_lab, b1=backend)
    reader = bare_lab.events()
    client = Http(bare_lab.listen, timeout=3)
    method, path = request.decode().split(" ")
    status, headers, got = client.request(method, path)
    assert status in (200, 204, 304) and got == body and "x-leftover" not in headers
    # The same client connection: its next answer is its own, not the leftover's.
    assert client.get("/b")[2] == b"second"
    client.close()
    error = reader.wait("error", backend="b1")
    assert "after the end of its response" in error["reason"], error
    assert backend.connections == 2  # the connection that said too much was never reused
    state = bare_lab.backend_state("b1")
    assert state["failures"] == 0 and state["healthy"], state  # a valid answer is no failure


def test_a_response_split_over_many_writes_then_surplus_is_still_cut_exactly(bare_lab):
    body = b"x" * 200_000  # past what one read brings (64 KiB), under KEEP_LIMIT (256 KiB)
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%sHTTP/1.1 200 OK\r\n" % (
        len(body), body,
    )  # fmt: skip
    backend = RawBackend(reply_for({b"GET /big": reply}))
    start(bare_lab, b1=backend)
    client = Http(bare_lab.listen, timeout=3)
    assert client.get("/big")[2] == body
    assert client.get("/b")[2] == b"second"


def test_surplus_after_a_response_too_long_to_keep_cuts_the_client_off_never_poisons(bare_lab):
    body = b"x" * 2_000_000  # past upstream.KEEP_LIMIT: where it ended cannot be found again
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%sHTTP/1.1 200 OK\r\n" % (
        len(body), body,
    )  # fmt: skip
    start(bare_lab, b1=RawBackend(reply_for({b"GET /big": reply})))
    reader = bare_lab.events()
    with socket.create_connection(split(bare_lab.listen), timeout=3) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: lab\r\n\r\n")
        got = b""
        while chunk := sock.recv(1 << 20):  # the balancer closes: a hang here times out
            got += chunk
    assert b"HTTP/1.1 200 OK\r\n" not in got[20:]  # not one byte of the surplus
    assert len(got) < len(reply)
    assert "cannot find where it ended" in reader.wait("error", backend="b1")["reason"]


def test_an_unrequested_101_from_a_backend_is_a_clear_502_with_no_traceback(bare_lab):
    switch = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: evil\r\n\r\nxx"
    backend = RawBackend(reply_for({b"GET /a": switch}))
    start(bare_lab, b1=backend)
    reader = bare_lab.events()
    status, _, body = Http(bare_lab.listen, timeout=3).get("/a")
    assert status == 502 and b"101 Switching Protocols" in body, body
    assert "101" in reader.wait("error", status=502)["reason"]
    assert bare_lab.supervisor.children["balancer"].alive()
    output = balancer_output(bare_lab)
    assert "Traceback" not in output and "Fatal error" not in output, output


HOP_BY_HOP = (
    b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n"
    b"Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\n"
    b"X-Kept: yes\r\nContent-Length: 5\r\n\r\nhello"
)


def test_hop_by_hop_headers_from_a_backend_stay_on_its_hop_and_the_client_stays_alive(bare_lab):
    backend = RawBackend(lambda request: HOP_BY_HOP)
    start(bare_lab, b1=backend)
    client = Http(bare_lab.listen, timeout=3)
    for _ in range(3):  # one client connection; the backend's "close" was about its own hop
        status, headers, body = client.request("GET", "/a")
        assert status == 200 and body == b"hello" and headers["x-kept"] == "yes"
        hop = {"connection", "keep-alive", "x-hop", "proxy-connection", "te", "trailer", "upgrade"}
        assert hop & set(headers) == set(), headers
    assert backend.connections == 3  # told "close", the balancer never reused one


def test_a_body_that_runs_to_the_close_is_sent_with_connection_close_and_then_closed(bare_lab):
    backend = RawBackend(lambda request: None)

    def serve(sock: socket.socket) -> None:  # one answer with no length, then close
        with sock:
            sock.settimeout(3)
            backend.requests.append(sock.recv(65536))
            sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")

    backend._serve = serve  # type: ignore[method-assign]
    start(bare_lab, b1=backend)
    with socket.create_connection(split(bare_lab.listen), timeout=3) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: lab\r\n\r\n")
        got = b""
        while chunk := sock.recv(65536):  # a client connection left open would time out here
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    assert body == b"until the end" and b"\r\nConnection: close" in head, got


def test_a_client_that_says_close_is_told_close_and_closed(bare_lab):
    start(bare_lab, b1=RawBackend(lambda request: SECOND))
    with socket.create_connection(split(bare_lab.listen), timeout=3) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    assert got.endswith(b"second") and b"\r\nConnection: close\r\n" in got, got


def test_an_http_1_0_keep_alive_client_is_told_keep_alive(bare_lab):
    start(bare_lab, b1=RawBackend(lambda request: SECOND))
    with socket.create_connection(split(bare_lab.listen), timeout=3) as sock:
        for _ in range(2):
            sock.sendall(b"GET /a HTTP/1.0\r\nHost: lab\r\nConnection: keep-alive\r\n\r\n")
            got = wait_for(lambda: sock.recv(65536), what="the answer")
            assert got.endswith(b"second") and b"\r\nConnection: keep-alive\r\n" in got, got


def test_hop_by_hop_headers_from_a_client_never_reach_the_backend(bare_lab):
    backend = RawBackend(lambda request: SECOND)
    start(bare_lab, b1=backend)
    with socket.create_connection(split(bare_lab.listen), timeout=3) as sock:
        sock.sendall(
            b"GET /a HTTP/1.1\r\nHost: lab\r\nConnection: keep-alive, X-Secret\r\n"
            b"X-Secret: 1\r\nKeep-Alive: 300\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
            b"Trailer: X-Sum\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n"
        )
        assert sock.recv(65536).endswith(b"second")
    (request,) = backend.requests
    names = {line.split(b":")[0].lower() for line in request.split(b"\r\n")[1:] if line}
    assert b"x-kept" in names
    assert names & {b"connection", b"x-secret", b"keep-alive", b"proxy-connection", b"te",
                    b"trailer", b"upgrade"} == set(), request  # fmt: skip


def test_a_100_continue_reaches_the_client_before_its_body_is_sent(bare_lab):
    backend = RawBackend(lambda request: None)

    def serve(sock: socket.socket) -> None:  # 100 Continue after the head, then the answer
        with sock:
            sock.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = head.partition(b"\r\n\r\n")[2]
            while len(body) < 5:
                body += sock.recv(65536)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body)

    backend._serve = serve  # type: ignore[method-assign]
    start(bare_lab, b1=backend)
    with socket.create_connection(split(bare_lab.listen), timeout=3) as sock:
        sock.sendall(
            b"POST /a HTTP/1.1\r\nHost: lab\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"  # a hang here times out
        sock.sendall(b"hello")
        got = wait_for(lambda: sock.recv(65536), what="the answer")
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"hello"), got
