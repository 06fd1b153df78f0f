"""The small APIs' one server core: same limits, one error shape, a 500 for our bugs, 501 for
Upgrade; and the traffic control API and the toy backend that use it."""

from __future__ import annotations

import json
import socket
import time

import pytest
from conftest import split
from test_backend import feed

from lab.http_api import (
    BODY_LIMIT,
    HEAD_LIMIT,
    MAX_DEPTH,
    ApiConnection,
    ApiError,
    Request,
    Response,
    parse_json,
)
from lab.supervisor import Supervisor


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def get_extra_info(self, key):
        return None

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def echo(request: Request) -> Response:
    if request.path == "/boom":
        raise KeyError("a bug of ours")
    if request.path == "/refuse":
        raise ApiError(409, "not now", "when")
    return Response(
        200, {"method": request.method, "path": request.path, "body": len(request.body)}
    )


def serve(*pieces: bytes, handle=echo) -> tuple[FakeTransport, ApiConnection]:
    connection = ApiConnection(handle, "test API")
    transport = FakeTransport()
    connection.connection_made(transport)
    for piece in pieces:
        connection.data_received(piece)
    return transport, connection


def replies(transport: FakeTransport) -> list[tuple[bytes, dict]]:
    """Every (status line, JSON body) written, in order."""
    found, rest = [], bytes(transport.written)
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        found.append((head.split(b"\r\n")[0], json.loads(rest[:length])))
        rest = rest[length:]
    return found


def test_a_bug_in_a_handler_is_a_500_with_a_json_error_and_a_log_line(capsys):
    transport, _ = serve(b"GET /boom HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n")
    ((status, body),) = replies(transport)
    assert status == b"HTTP/1.1 500 Internal Server Error" and transport.closed
    assert body["error"].startswith("internal error in the test API") and body["field"] is None
    logged = capsys.readouterr().err
    assert "test API: internal error" in logged and "KeyError: 'a bug of ours'" in logged


def test_a_bug_in_a_parser_callback_is_a_500_too(capsys):
    def handle(request):
        raise AssertionError("unreachable")

    transport, connection = serve(handle=handle)
    connection.on_url = None  # httptools then fails inside its callback: our bug, not the client's
    connection.data_received(b"GET / HTTP/1.1\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 500 ") and transport.closed
    assert "Traceback" in capsys.readouterr().err


def test_answers_in_order_with_phrases_from_http_status_and_one_error_shape():
    transport, _ = serve(
        b"PUT /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /refuse HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    assert transport.closed
    first, refused = replies(transport)
    assert first == (b"HTTP/1.1 200 OK", {"method": "PUT", "path": "/a", "body": 3})
    assert refused == (b"HTTP/1.1 409 Conflict", {"error": "not now", "field": "when"})
    transport, _ = serve(b"PUT http://lab/c?x=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert replies(transport) == [(b"HTTP/1.1 200 OK", {"method": "PUT", "path": "/c", "body": 0})]
    transport, _ = serve(b"HEAD /b HTTP/1.1\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.written.endswith(b"Connection: keep-alive\r\n\r\n")  # and no body


def test_the_same_limits_431_and_413_everywhere():
    big_head = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * HEAD_LIMIT + b"\r\n\r\n"
    endless = [b"GET / HTTP/1.1\r\nX-Big: "] + [b"a" * 4096] * (HEAD_LIMIT // 4096 + 2)
    for pieces in ([big_head], endless, [b"GET /" + b"a" * HEAD_LIMIT + b" HTTP/1.1\r\n\r\n"]):
        transport, _ = serve(*pieces)
        ((status, body),) = replies(transport)
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large" and transport.closed
        assert "head is too large" in body["error"]
    head = b"PUT / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (BODY_LIMIT + 1)
    transport, _ = serve(head, b"x" * BODY_LIMIT, b"x")
    ((status, body),) = replies(transport)
    assert status.startswith(b"HTTP/1.1 413 ") and body["field"] == "body" and transport.closed


def test_a_body_too_large_is_refused_before_it_is_sent_when_the_client_asks():
    transport, _ = serve(
        b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (BODY_LIMIT + 1)
    )
    assert (
        transport.written.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in transport.written
    )
    transport, _ = serve(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert transport.written == b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /state HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x85frame",
        b"POST /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nab",
        b"CONNECT example.com:443 HTTP/1.1\r\n\r\n\x16\x03\x01",
    ],
)
def test_upgrade_and_connect_get_501_and_nothing_after_is_read(request_bytes):
    transport, _ = serve(request_bytes, b"GET /next HTTP/1.1\r\n\r\n")
    ((status, body),) = replies(transport)
    assert status == b"HTTP/1.1 501 Not Implemented" and transport.closed
    assert "does not" in body["error"]


def test_a_client_that_reads_no_answers_is_not_read_either():
    transport, connection = serve(b"GET /a HTTP/1.1\r\n\r\n")
    connection.pause_writing()  # asyncio: the answers pile up unread
    assert not transport.reading
    connection.resume_writing()
    assert transport.reading


def test_a_handler_can_take_the_connection_over_and_is_told_when_it_ends():
    lost = []

    def handle(request):
        def take(transport):
            transport.write(b"stream\n")
            return lambda: lost.append(request.path)

        return take

    transport, connection = serve(
        b"GET /events HTTP/1.1\r\n\r\n", b"GET /x HTTP/1.1\r\n\r\n", handle=handle
    )
    assert transport.written == b"stream\n"  # the second request is never parsed
    connection.connection_lost(None)
    assert lost == ["/events"]


def test_parse_json_refuses_what_json_loads_lets_through():
    cases = {
        b'{"timeouts": {"connect_ms": Infinity}}': "timeouts.connect_ms",
        b'{"a": [1, {"b": -Infinity}]}': "a[1].b",
        b'{"weights": {"b1": NaN}}': "weights.b1",
        b"[1e400]": "[0]",
        b"NaN": "body",
        b"[" * 100_000 + b"]" * 100_000: "body",
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1): "body",
        b'"\xff"': "body",
        b"{": "body",
    }
    for body, field in cases.items():
        with pytest.raises(ApiError) as refused:
            parse_json(body)
        assert (refused.value.status, refused.value.field) == (400, field), body[:40]
    deep_enough = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_json(deep_enough) is not None
    brackets_in_text = b'["' + b"[{" * 100 + b'\\"", "\\\\"]'
    assert parse_json(brackets_in_text)[1] == "\\"


def test_parse_json_stays_fast_on_large_bodies():
    started = time.perf_counter()
    assert len(parse_json(b"[" + b"[]," * 340_000 + b"[]]")) == 340_001
    with pytest.raises(ApiError):
        parse_json(b"[" * 500_000 + b"]" * 500_000)
    assert time.perf_counter() - started < 1.0  # about 0.05 s on a quiet machine


# -- the toy backend: its own fast connection, the core's rules


def test_the_toy_backend_answers_an_upgrade_with_501():
    transport = feed(
        b"GET /state HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x85frame"
    )
    head, _, body = bytes(transport.written).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501 Not Implemented") and transport.closed
    assert "upgrade" in json.loads(body)["error"].lower()
    assert transport.written.count(b"HTTP/1.1 ") == 1


def test_the_toy_backend_refuses_bad_knob_json_with_400_never_500():
    for body in (b"[" * 20_000 + b"]" * 20_000, b'{"latency_ms": Infinity}'):
        request = b"PUT /_lab/knobs HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        transport = feed(request)
        head, _, reply = bytes(transport.written).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 Bad Request"), head
        assert json.loads(reply)["error"]


def test_the_toy_backend_uses_the_shared_error_shape_and_limits():
    transport = feed(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    head, _, body = bytes(transport.written).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert set(json.loads(body)) == {"error", "field"}


# -- the traffic generator's control API, a real process


def raw(address: str, data: bytes) -> bytes:
    with socket.create_connection(split(address), timeout=3) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_traffic_control_api_refuses_upgrades_and_bad_json_clearly():
    with Supervisor() as supervisor:
        child = supervisor.start("traffic", ["traffic", "--target", "http://127.0.0.1:9",
                                             "--rate", "0", "--paused"])  # fmt: skip
        address = child.addresses["control"]
        reply = raw(address, b"GET /state HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket"
                             b"\r\n\r\n\x81\x85frame")  # fmt: skip
        assert reply.startswith(b"HTTP/1.1 501 Not Implemented") and reply.count(b"HTTP/1.1") == 1
        for body, field in [
            (b'{"rate": Infinity}', "rate"),
            (b'{"rate": 1e400}', "rate"),
            (b"[" * 100_000 + b"]" * 100_000, "body"),
            (b'{"clients": "\xc2\xb2"}', "clients"),
        ]:
            request = b"PUT /config HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            head, _, reply = raw(address, request + b"GET /state HTTP/1.1\r\nConnection: close"
                                 b"\r\n\r\n").partition(b"\r\n\r\n")  # fmt: skip
            assert head.startswith(b"HTTP/1.1 400 "), (body[:30], head)
            assert json.loads(reply.split(b"\n")[0])["field"] == field
        assert child.alive()
