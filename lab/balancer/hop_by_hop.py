"""Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, so none crosses the balancer.

Requests lose them in http_proxy (their names are in NOT_FORWARDED, and the
headers a Connection line names are dropped too). A backend's response loses
them here, and the balancer writes its own Connection line for the client's
hop: the backend may close its connection to us while ours to the client stays
open (RFC 9112 9.6). UpstreamConnection.on_header notes whether a head holds
any (looking closer only at names of their lengths), so a head without any of
them passes through untouched, not even searched.
"""

from __future__ import annotations

import re
from typing import Final

HOP_BY_HOP: Final = (
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
)


HOP_BY_HOP_SET: Final = frozenset(HOP_BY_HOP)
FRAMED: Final = re.compile(rb"\r\n(?:content-length|transfer-encoding):", re.IGNORECASE)


def named_by_connection(values: list[bytes]) -> set[bytes]:
    """The header names Connection lines list ('close, X-Secret' -> {b'close', b'x-secret'})."""
    return {token.strip().lower() for value in values for token in value.split(b",")}


def without_hop_by_hop(head: bytes) -> bytes:
    """A response head (status line and header lines, each ending in CRLF, no blank line)
    without the hop-by-hop headers and the ones its Connection lines name."""
    lines = head.split(b"\r\n")
    names = [line.partition(b":")[0].strip().lower() for line in lines]
    named = named_by_connection(
        [
            line.partition(b":")[2]
            for line, name in zip(lines, names, strict=True)
            if name == b"connection"
        ]
    )
    kept = [
        line
        for i, (line, name) in enumerate(zip(lines, names, strict=True))
        if i == 0 or (name not in HOP_BY_HOP_SET and name not in named)
    ]
    return b"\r\n".join(kept)


def body_runs_to_close(head: bytes, status: int, is_head: bool) -> bool:
    """Does this response's body end only when the backend closes (no length, no chunks)?"""
    if is_head or status < 200 or status in (204, 304):
        return False
    return FRAMED.search(head) is None


def final_head(data: bytes) -> tuple[int, int]:
    """Where the final response head lies in `data`, after any interim 1xx heads: (start,
    end), `end` at the CRLF that closes its last header line. (-1, -1) while incomplete."""
    start = 0
    while True:
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            return -1, -1
        if data[start + 9 : start + 10] != b"1":  # "HTTP/1.1 1xx": an interim head, as it is
            return start, end + 2
        start = end + 4


def interim_heads(data: bytes) -> int:
    """How many bytes at the start of `data` are complete interim 1xx heads: those go to
    the client at once (a client waiting for its 100 Continue sends no body until then)."""
    start = 0
    while data[start + 9 : start + 10] == b"1":
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            break
        start = end + 4
    return start
