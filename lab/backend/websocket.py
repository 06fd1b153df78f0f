"""A WebSocket echo (RFC 6455) on every toy backend: a long-lived connection to watch.

`GET /ws` with `Upgrade: websocket` gets `101 Switching Protocols` (with
`X-Backend`, so a client knows which backend holds it); from then on every
message comes back as it was sent, pings get their pong, and a close gets its
close. Through the lab's Layer 7 balancer that is a tunnel: routed once, then
pinned to its backend until it closes, which is what a lesson on long-lived
connections needs to show (least connections counts it; a new backend gets
none of the ones already open).

The frame codec is pure (bytes in, frames out) and tested in pieces; the
protocol object only feeds it and writes the echo. Frames are echoed one by
one, so a fragmented message comes back fragmented the same way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import Callable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
PATH = "/ws"
MAX_PAYLOAD = 16 * 1024 * 1024  # a bigger frame is refused with close code 1009
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class ProtocolError(Exception):
    """The client broke RFC 6455: (close code, reason)."""


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def switching_protocols(key: bytes, backend: str) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: %s\r\nX-Backend: %s\r\n\r\n" % (accept_key(key), backend.encode())
    )


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A server's frame: never masked (RFC 6455 5.1)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", first, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


class Frames:
    """Client frames out of a byte stream, unmasked: feed bytes, get (fin, opcode, payload)."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[bool, int, bytes]]:
        self.buffer += data
        frames = []
        while (found := self._next()) is not None:
            frames.append(found)
        return frames

    def _next(self) -> tuple[bool, int, bytes] | None:
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        if not second & 0x80:
            raise ProtocolError(1002, "a client's frames must be masked (RFC 6455 5.1)")
        size, at = second & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                return None
            size, at = struct.unpack_from("!H", buffer, 2)[0], 4
        elif size == 127:
            if len(buffer) < 10:
                return None
            size, at = struct.unpack_from("!Q", buffer, 2)[0], 10
        if size > MAX_PAYLOAD:
            raise ProtocolError(1009, f"a frame over {MAX_PAYLOAD >> 20} MiB")
        if len(buffer) < at + 4 + size:
            return None
        mask = buffer[at : at + 4]
        masked = buffer[at + 4 : at + 4 + size]
        self.buffer = buffer[at + 4 + size :]
        # XOR with the 4-byte mask repeated: one big-integer operation, not a loop per byte.
        key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
        payload = (int.from_bytes(masked, "big") ^ key).to_bytes(size, "big")
        return bool(first & 0x80), first & 0x0F, payload


class WebSocketEcho(asyncio.Protocol):
    """One upgraded connection: every message back, until a close."""

    def __init__(self, transport: asyncio.Transport, on_close: Callable[[], None]) -> None:
        self.transport = transport
        self.frames = Frames()
        self.on_close = on_close  # the backend's connection count goes down with it

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        try:
            frames = self.frames.feed(data)
        except ProtocolError as exc:
            code, reason = exc.args
            self.transport.write(frame(CLOSE, struct.pack("!H", code) + reason.encode()[:120]))
            self.transport.close()
            return
        for fin, opcode, payload in frames:
            if opcode in (CONTINUATION, TEXT, BINARY):
                self.transport.write(frame(opcode, payload, fin))
            elif opcode == PING:
                self.transport.write(frame(PONG, payload))
            elif opcode == CLOSE:  # answer it, then the server closes TCP first (RFC 6455 7.1.1)
                self.transport.write(frame(CLOSE, payload[:2]))
                self.transport.close()
                return

    def eof_received(self) -> bool:
        return False  # a client gone without a close frame: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_close()
