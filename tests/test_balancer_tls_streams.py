"""TLS termination on real sockets with a real toy backend: big bodies both ways through
flow control, several requests in one record, a client's close_notify, and a client that
goes away mid-answer."""

from __future__ import annotations

import hashlib
import socket
import ssl

import pytest
from conftest import Lab, split, wait_for
from tls_helpers import make_pems, read_response

from lab.backend.responses import pattern_bytes
from lab.supervisor import Supervisor

BIG = 8 * 1024 * 1024  # far more than any buffer between the client and the backend


@pytest.fixture
def tls_toy(tmp_path):
    """A toy backend (b1) behind a balancer that terminates TLS; (lab, pems)."""
    pems = make_pems(tmp_path)
    with Supervisor() as supervisor:
        lab = Lab(supervisor)
        child = supervisor.start("b1", ["backend", "--name", "b1", "--port", "0"])
        lab.backends["b1"] = child.addresses["listen"]
        flags = ["--tls", "terminate", "--tls-cert", str(pems.certificate)]
        lab.start_balancer(*flags, "--tls-key", str(pems.key))
        yield lab, pems
        for reader in lab._readers:
            reader.close()


def connect(lab: Lab, pems, receive_buffer: int = 0) -> ssl.SSLSocket:
    raw = socket.socket()
    raw.settimeout(10)
    if receive_buffer:  # set before connecting, so the window stays small
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    raw.connect(split(lab.listen))
    return pems.client_context().wrap_socket(raw, server_hostname="shop.lab.test")


def read_head(sock: ssl.SSLSocket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the answer's head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def test_a_big_answer_to_a_slow_reader_arrives_whole(tls_toy):
    lab, pems = tls_toy
    # A small receive window: the balancer's write buffer fills and it must pause the
    # backend (pause_writing through the TLS layer), then resume, many times over.
    with connect(lab, pems, receive_buffer=32 * 1024) as sock:
        sock.sendall(b"GET /bytes?size=%d HTTP/1.1\r\nHost: shop.lab.test\r\n\r\n" % BIG)
        head, body = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % BIG in head
        while len(body) < BIG:
            chunk = sock.recv(16 * 1024)
            assert chunk, f"closed after {len(body)} of {BIG} bytes"
            body += chunk
    assert body == pattern_bytes(BIG)


def test_a_big_upload_arrives_whole(tls_toy):
    lab, pems = tls_toy
    upload = bytes(range(256)) * (BIG // 256)
    with connect(lab, pems) as sock:
        sock.sendall(
            b"POST /anything HTTP/1.1\r\nHost: shop.lab.test\r\nContent-Length: %d\r\n\r\n"
            % len(upload)
        )
        sock.sendall(upload)
        status, seen = read_response(sock.makefile("rb"))
    assert status == 200
    assert seen["bytes_received"] == BIG
    assert seen["sha256"] == hashlib.sha256(upload).hexdigest()


def test_requests_sent_together_are_answered_in_order(tls_toy):
    lab, pems = tls_toy
    pipelined = b"".join(
        b"GET /anything?n=%d HTTP/1.1\r\nHost: shop.lab.test\r\n\r\n" % n for n in range(5)
    )
    with connect(lab, pems) as sock:
        sock.sendall(pipelined)  # one TLS record, five requests
        file = sock.makefile("rb")
        paths = [read_response(file)[1]["path"] for _ in range(5)]
    assert paths == [f"/anything?n={n}" for n in range(5)]


def test_a_clients_close_notify_ends_the_connection_cleanly(tls_toy):
    lab, pems = tls_toy
    events = lab.events()
    sock = connect(lab, pems)
    sock.sendall(b"GET /anything HTTP/1.1\r\nHost: shop.lab.test\r\n\r\n")
    status, _ = read_response(sock.makefile("rb"))
    assert status == 200
    raw = sock.unwrap()  # our close_notify; the balancer answers with its own and closes
    assert raw.recv(100) == b""
    raw.close()
    assert events.of("error") == []
    with connect(lab, pems) as again:  # and it carries on
        again.sendall(b"GET /anything HTTP/1.1\r\nHost: shop.lab.test\r\n\r\n")
        assert read_response(again.makefile("rb"))[0] == 200


def test_a_client_that_leaves_mid_answer_frees_its_backend(tls_toy):
    lab, pems = tls_toy
    sock = connect(lab, pems)
    sock.sendall(b"GET /bytes?size=%d HTTP/1.1\r\nHost: shop.lab.test\r\n\r\n" % BIG)
    read_head(sock)
    sock.close()  # no close_notify, no more reading: gone
    wait_for(lambda: lab.state()["backends"][0]["active"] == 0, 10, what="b1 freed")
    with connect(lab, pems) as again:
        again.sendall(b"GET /anything HTTP/1.1\r\nHost: shop.lab.test\r\n\r\n")
        status, seen = read_response(again.makefile("rb"))
    assert status == 200 and seen["backend"] == "b1"
