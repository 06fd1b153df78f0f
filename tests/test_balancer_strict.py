"""Layer 7 requests: at least as strict as nginx, and rules route the request the backend sees."""

from __future__ import annotations

import socket

import pytest
from conftest import Lab, RawBackend, split, wait_for

from lab.supervisor import Supervisor


def named(name: bytes):
    """A backend that answers every request with its own name."""
    return RawBackend(lambda request: b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n" + name)


@pytest.fixture
def lab():
    """Two raw recording backends: pub (default) and adm (pool p2, by Host or by /admin)."""
    with Supervisor() as supervisor:
        lab = Lab(supervisor)
        lab.raw = {"pub": named(b"pub"), "adm": named(b"adm")}
        for name, backend in lab.raw.items():
            lab.backends[name] = backend.address
        lab.start_balancer()
        lab.configure(
            pools=[{"name": "pub", "backends": ["pub"]}, {"name": "p2", "backends": ["adm"]}],
            rules=[
                {"host": "admin.example", "pool": "p2"},
                {"path_prefix": "/admin", "pool": "p2"},
                {"path_prefix": "/", "pool": "pub"},
            ],
        )
        yield lab
        for backend in lab.raw.values():
            backend.close()


def send(lab, data: bytes) -> bytes:
    """Send `data` on a new connection; read until the balancer closes or goes quiet."""
    with socket.create_connection(split(lab.listen), timeout=3) as sock:
        sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
                sock.settimeout(0.3)  # once the answer began, a pause means it is all here
        except TimeoutError:
            pass
    return got


def requests(lab) -> dict[str, list[bytes]]:
    return {name: backend.requests for name, backend in lab.raw.items()}


@pytest.mark.parametrize(
    "hosts", [(b"public.example", b"admin.example"), (b"admin.example", b"public.example")]
)
def test_two_host_headers_are_refused_whatever_their_order(lab, hosts):
    first, second = hosts
    got = send(lab, b"GET /x HTTP/1.1\r\nHost: %s\r\nHost: %s\r\n\r\n" % (first, second))
    assert got.startswith(b"HTTP/1.1 400") and b"two Host headers" in got, got
    assert requests(lab) == {"pub": [], "adm": []}


@pytest.mark.parametrize(
    "request_line, host",
    [
        (b"GET http://public.example/admin/x HTTP/1.1", b"public.example"),  # the path rule
        (b"GET http://admin.example/x HTTP/1.1", b"admin.example"),  # the URI's host wins
        (b"GET http://Admin.Example:8080/x?q=1 HTTP/1.1", b"Admin.Example:8080"),
    ],
)
def test_an_absolute_form_target_is_routed_and_forwarded_in_origin_form(lab, request_line, host):
    got = send(lab, request_line + b"\r\nHost: public.example\r\n\r\n")
    assert got.endswith(b"adm"), got
    (forwarded,) = lab.raw["adm"].requests
    line, *headers = forwarded.split(b"\r\n\r\n")[0].split(b"\r\n")
    path = request_line.split(b" ")[1].split(host, 1)[1]
    assert line == b"GET %s HTTP/1.1" % path
    assert [h for h in headers if h.lower().startswith(b"host:")] == [b"Host: " + host]


@pytest.mark.parametrize(
    "sent, status, says",
    [
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, b"invalid Host"),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, b"invalid Host"),
        (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, b"invalid Host"),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, b"HTTP/2.0"),
        (b"GET /\r\n\r\n", 505, b"HTTP/0.9"),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400, b"Invalid HTTP version"),
        (b"FOOBAR / HTTP/1.1\r\nHost: a\r\n\r\n", 400, b"Invalid method"),
        (b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 400, b"Invalid method"),
        (b"GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, b"request target"),
        (b"GET http://user@a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, b"user name"),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5 \r\nhello\r\n0\r\n\r\n",
            400,
            b"chunk size",
        ),
    ],
)
def test_requests_nginx_refuses_are_refused_before_any_backend_sees_them(lab, sent, status, says):
    got = send(lab, sent)
    assert got.startswith(b"HTTP/1.1 %d" % status) and says in got, got
    assert requests(lab) == {"pub": [], "adm": []}


def test_header_names_with_underscores_are_dropped_as_nginx_does(lab):
    got = send(
        lab,
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent_Length: 0\r\n"
        b"Transfer_Encoding: chunked\r\nX_Route: adm\r\n\r\nhello",
    )
    assert got.endswith(b"pub"), got
    (forwarded,) = lab.raw["pub"].requests
    assert b"_" not in forwarded.split(b"\r\n\r\n")[0] and forwarded.endswith(b"\r\n\r\nhello")


def test_an_http_1_0_request_without_host_reaches_the_backend_with_one(lab):
    got = send(lab, b"GET /x HTTP/1.0\r\n\r\n")
    assert got.endswith(b"pub"), got
    (forwarded,) = lab.raw["pub"].requests
    hosts = [h for h in forwarded.split(b"\r\n") if h.lower().startswith(b"host:")]
    assert hosts == [b"Host: " + lab.listen.encode()], forwarded


def test_nothing_is_read_after_a_request_that_says_connection_close(lab):
    got = send(
        lab,
        b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"pub"), got
    assert got.count(b"HTTP/1.1") == 1  # no 400 for the request behind it
    wait_for(lambda: len(lab.raw["pub"].requests) == 1, what="the first request")
    assert lab.raw["adm"].requests == []
