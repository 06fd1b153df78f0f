"""The request target and Host a backend will see, so routing rules can see the same.

RFC 9112 3.2.2: in an absolute-form target (`GET http://shop.example/cart`) the
URI's authority wins over any Host header. The balancer forwards such a request
in origin-form (`GET /cart`, `Host: shop.example`), and rules match that.
"""

from __future__ import annotations

import re
from typing import Any, Final

import httptools

# A Host value: a name, an IPv4 address or a bracketed IPv6 literal, and an optional port
# (RFC 9110 7.2, RFC 3986 3.2.2). Spaces, slashes, '@' and the like are refused, as nginx does.
HOST: Final = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9!$&'()*+,;=._~%-]+)(?::[0-9]{1,5})?")


class BadTarget(ValueError):
    """A request target or Host the balancer refuses; the message says why."""


# The quick look most Host values pass: "a" for every byte a name[:port] may hold, "0" for
# the rest (brackets too: an IPv6 literal takes the regex). translate + isalpha is C all
# the way, where `in` on bytes makes and drops a TypeError each time (CPython 3.11).
NAME_BYTES: Final = (
    b"!$%&'()*+,-.0123456789:;=ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
)
NAME_TABLE: Final = bytes(0x61 if c in NAME_BYTES else 0x30 for c in range(256))


def valid_host(value: bytes) -> bool:
    if value.translate(NAME_TABLE).isalpha():  # b"".isalpha() is False: empty takes the regex
        colon = value.find(b":")
        if colon < 0:
            return True
        port = value[colon + 1 :]
        return colon > 0 and port.isdigit() and len(port) <= 5
    return HOST.fullmatch(value) is not None


def origin_form(url: bytes) -> tuple[bytes, bytes]:
    """b'http://Shop.example:8080/a?b=1' -> (b'/a?b=1', b'Shop.example:8080')."""
    try:
        # Any: httptools' stubs say bytes where it hands back None, and compiled code checks.
        parts: Any = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        raise BadTarget(f"malformed request target {url[:100]!r}") from None
    if parts.schema is None or parts.schema.lower() not in (b"http", b"https"):
        raise BadTarget(f"request target {url[:100]!r} is neither /path nor http://host/path")
    if parts.userinfo:
        raise BadTarget("a user name in the request target is not forwarded (user@host)")
    host = parts.host or b""
    if b":" in host:  # httptools hands back an IPv6 literal without its brackets
        host = b"[%s]" % host
    authority = host if parts.port is None else b"%s:%d" % (host, parts.port)
    if not valid_host(authority):
        raise BadTarget(f"invalid host {authority[:100]!r} in the request target")
    path = parts.path or b"/"
    if parts.query is not None:
        path += b"?" + parts.query
    return path, authority
