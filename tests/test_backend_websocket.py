"""The toy backend's WebSocket echo: the frame codec on its own, then a real process and client."""

from __future__ import annotations

import os
import socket
import struct

import pytest
from conftest import Http, split, wait_for

from lab.backend.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    TEXT,
    Frames,
    ProtocolError,
    accept_key,
    frame,
)
from lab.supervisor import Supervisor

websockets_sync = pytest.importorskip("websockets.sync.client")


def masked(
    opcode: int, payload: bytes, fin: bool = True, mask: bytes = b"\x01\x02\x03\x04"
) -> bytes:
    """A client's frame, as RFC 6455 5.2 lays it out."""
    size = len(payload)
    if size < 126:
        length = struct.pack("!B", 0x80 | size)
    elif size < 1 << 16:
        length = struct.pack("!BH", 0x80 | 126, size)
    else:
        length = struct.pack("!BQ", 0x80 | 127, size)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode]) + length + mask + body


def test_the_accept_key_is_rfc_6455s_example():
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 200_001])
def test_frames_of_every_length_form_come_out_whole_when_fed_a_byte_at_a_time_or_at_once(size):
    payload = os.urandom(size)
    data = masked(BINARY, payload) + masked(TEXT, b"next")
    at_once = Frames().feed(data)
    assert at_once == [(True, BINARY, payload), (True, TEXT, b"next")]
    if size <= 65536:
        frames, pieces = Frames(), []
        for i in range(len(data)):
            pieces += frames.feed(data[i : i + 1])
        assert pieces == at_once
    assert frame(BINARY, payload)[2 if size < 126 else 4 if size < 65536 else 10 :] == payload


def test_a_fragmented_message_keeps_its_pieces():
    data = masked(TEXT, b"hel", fin=False) + masked(CONTINUATION, b"lo")
    assert Frames().feed(data) == [(False, TEXT, b"hel"), (True, CONTINUATION, b"lo")]


def test_an_unmasked_client_frame_is_a_protocol_error():
    with pytest.raises(ProtocolError) as caught:
        Frames().feed(frame(TEXT, b"bare"))
    assert caught.value.args[0] == 1002


@pytest.fixture(scope="module")
def backend():
    with Supervisor() as supervisor:
        yield supervisor.start("b1", ["backend", "--name", "b1", "--port", "0"]).addresses["listen"]


def connections(address: str) -> int:
    client = Http(address)
    try:
        return client.json("GET", "/_lab/state")[1]["counters"]["connections"]
    finally:
        client.close()


def test_a_real_client_gets_every_message_back_and_the_backends_name(backend):
    with websockets_sync.connect(f"ws://{backend}/ws", compression=None, open_timeout=5) as ws:
        assert ws.response.headers["X-Backend"] == "b1"
        for message in ["hello", os.urandom(70_000), "é" * 40_000]:
            ws.send(message)
            assert ws.recv(timeout=5) == message
        ws.ping().wait(5)
        assert connections(backend) == 2  # this one and the control request's
    wait_for(lambda: connections(backend) == 1, what="the closed WebSocket no longer counted")


def test_frames_sent_with_the_handshake_are_echoed_after_the_101(backend):
    with socket.create_connection(split(backend), timeout=5) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: b\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            + masked(TEXT, b"early")
            + masked(CLOSE, struct.pack("!H", 1000))
        )
        got = b""
        while chunk := sock.recv(1000):
            got += chunk
    head, _, frames = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    assert frames == frame(TEXT, b"early") + frame(CLOSE, struct.pack("!H", 1000))


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /other HTTP/1.1\r\nSec-WebSocket-Key: a2V5\r\n", b"501"),
        (b"GET /ws HTTP/1.1\r\n", b"400"),  # no key
    ],
)
def test_other_upgrades_are_refused(backend, head, status):
    with socket.create_connection(split(backend), timeout=5) as sock:
        sock.sendall(head + b"Host: b\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        assert sock.recv(1000).startswith(b"HTTP/1.1 " + status)
