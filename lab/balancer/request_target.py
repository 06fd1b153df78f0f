"""The request a backend will see, made before routing, so routing rules see the same.

RFC 9112 3.2.2: in an absolute-form target (`GET http://shop.example/cart`) the
URI's authority wins over any Host header. The balancer forwards such a request
in origin-form (`GET /cart`, `Host: shop.example`), and rules match that.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import httptools

from lab.balancer.hop_by_hop import named_by_connection

if TYPE_CHECKING:
    from lab.balancer.http_exchange import Exchange

# A Host value: a name, an IPv4 address or a bracketed IPv6 literal, and an optional port
# (RFC 9110 7.2, RFC 3986 3.2.2). Spaces, slashes, '@' and the like are refused, as nginx does.
HOST: Final = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9!$&'()*+,;=._~%-]+)(?::[0-9]{1,5})?")


class Reject(Exception):
    """A request we refuse to forward, with the status and the learner-readable reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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


# -- the request as the backend will see it (an Exchange's head, before routing) ------


def validate(self: Exchange) -> None:
    """Refuse what a chain of HTTP parsers could disagree on (request smuggling)."""
    lengths = self.content_lengths
    if lengths and self.transfer_encoding is not None:
        raise Reject(
            400, "both Content-Length and Transfer-Encoding sent (request smuggling guard)"
        )
    if lengths and len(set(lengths)) > 1:
        raise Reject(400, "conflicting Content-Length headers (request smuggling guard)")
    if not self.has_host:
        if not self.http10:
            raise Reject(400, "HTTP/1.1 request without a Host header")
        # HTTP/1.0 needs no Host, but the backend hears HTTP/1.1: name the address
        # the client reached, as the authority of the request.
        sockname = (
            self.client.transport.get_extra_info("sockname") if self.client.transport else None
        )
        ip, port = (sockname[0], sockname[1]) if sockname else ("localhost", 80)
        set_host(self, (f"[{ip}]" if ":" in ip else ip).encode() + b":%d" % port)


def normalise(self: Exchange) -> None:
    """Make the request the backend will see, before rules look at it: an absolute-form
    target becomes origin-form with its authority as Host (RFC 9112 3.2.2), and the
    headers a Connection line names are dropped (they are hop-by-hop)."""
    if self.url[:1] != b"/" and not (self.url == b"*" and self.method == "OPTIONS"):
        try:
            self.url, authority = origin_form(self.url)
        except BadTarget as exc:
            raise Reject(400, str(exc)) from None
        set_host(self, authority)
    if self.connection is not None:
        named = named_by_connection(self.connection) - {b"close", b"keep-alive"}
        if named:
            self.pairs = [(name, value) for name, value in self.pairs if name not in named]
            self.lines = [
                line for line in self.lines if line.partition(b":")[0].lower() not in named
            ]


def set_host(self: Exchange, host: bytes) -> None:
    """Host is `host`, whatever the client's Host line said."""
    self.pairs = [(name, value) for name, value in self.pairs if name != b"host"]
    self.pairs.append((b"host", host))
    self.lines = [line for line in self.lines if line[:5].lower() != b"host:"]
    self.lines.append(b"Host: %s\r\n" % host)
    self.has_host = True
