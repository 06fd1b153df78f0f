"""Cookies on the wire at Layer 7: read from a request, the sticky one removed, Set-Cookie added.

The sticky cookie is the balancer's business (HAProxy's `insert indirect
nocache`): it is inserted into a response head (Exchange.response_head), marked
uncacheable, and taken out of requests before they reach a backend.
"""

from __future__ import annotations

from typing import Final

# HAProxy's `nocache`: a response that pins a client must not be cached and shared.
NO_CACHE: Final = b'Cache-Control: no-cache="Set-Cookie"\r\n'


def parse_cookies(header: str) -> dict[str, str]:
    """'a=1; b=2' -> {'a': '1', 'b': '2'}; lenient, like browsers (RFC 6265 5.2)."""
    cookies = {}
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        if sep:
            cookies[name.strip()] = value.strip().strip('"')
    return cookies


def without_cookie(lines: list[bytes], name: str) -> list[bytes]:
    """The request's header lines with cookie `name` taken out of every Cookie line."""
    unwanted = name.encode()
    kept_lines = []
    for line in lines:
        if line[:7].lower() == b"cookie:":
            kept = [
                pair
                for pair in line[7:].strip().split(b";")
                if pair.strip().split(b"=", 1)[0].strip() != unwanted
            ]
            if not kept:
                continue
            line = b"Cookie: " + b";".join(kept).strip() + b"\r\n"
        kept_lines.append(line)
    return kept_lines
