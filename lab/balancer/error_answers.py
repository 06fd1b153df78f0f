"""The answers the Layer 7 proxy writes itself, when no backend's answer will do.

A request the balancer refuses (malformed 400, a head over the limit 431, a
slow head 408, an HTTP version it does not speak 505) or cannot carry (no backend
502 or 503) gets a short plain-text answer from the balancer, with a reason a
learner can read, and an error event. `reject` is the refusal of a bad request,
after which the connection closes; `write_error` writes any such answer.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from lab.balancer.http_proxy import HttpClientConnection

REASONS: Final = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    499: "Client Closed Request",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


def write_error(self: HttpClientConnection, status: int, reason: str, close: bool) -> None:
    if self.transport is None or self.transport.is_closing():
        return
    body = f"{status} {REASONS.get(status, '')}: {reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nX-Balancer: lb-lab\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    ).encode()
    self.transport.write(head + body)


def reject(self: HttpClientConnection, status: int, reason: str) -> None:
    """Refuse a bad request, then close: after a parse error the byte stream cannot be trusted.

    Requests already complete and on their way to a backend are answered first,
    as nginx does; anything after them is dropped.
    """
    self.balancer.publish_error(self.balancer.next_id(), status, reason)
    owed = [e for e in self.exchanges if e.backend is not None and e.request_complete]
    for exchange in self.exchanges:
        if exchange not in owed:
            exchange.abort()
    self.exchanges = deque(owed)
    if not owed:
        write_error(self, status, reason, close=True)
        self.close()
        return
    self.rejected = (status, reason)
    self.pause_reading_for("rejected")
