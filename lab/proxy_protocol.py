"""The PROXY protocol (v1 text, v2 binary): the client's address, told by the proxy in front.

A balancer behind another proxy sees only that proxy's address. HAProxy's PROXY
protocol puts one header in front of the connection's first byte saying who
the client really was, so hashing, source stickiness, X-Forwarded-For and the
events can use the real client. It is read once per connection, never per
request. A header is believed only from a trusted source (`TrustedSources`):
anyone else could claim any address.

    v1: "PROXY TCP4 203.0.113.7 127.0.0.1 51000 8080\\r\\n"   (at most 107 bytes)
        "PROXY UNKNOWN\\r\\n"                                   (keep the real address)
    v2: a 12-byte signature, version/command, family/transport, a 2-byte length,
        the addresses, then type-length-value extensions (skipped).

`parse_header` is pure: it takes the bytes received so far and answers NEED_MORE, a
`ProxyHeader` (with how many bytes it used), or raises `ProxyError` with a
reason a learner can read. `encode_v1` and `encode_v2` are the sending side
(the traffic generator, and `send-proxy` towards backends at Layer 4).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX: Final = b"PROXY "
V1_MAX: Final = 107  # the spec's longest v1 line, CRLF included
V2_FIXED: Final = 16  # signature, version/command, family, length
V2_MAX_BODY: Final = 2048  # addresses plus extensions; real headers are far smaller

_LOCAL: Final = 0x0
_PROXY: Final = 0x1
_INET: Final = 0x1
_INET6: Final = 0x2
_STREAM: Final = 0x1
_DGRAM: Final = 0x2


class ProxyError(ValueError):
    """The header is malformed or unsupported; the connection should be closed."""


@dataclass(frozen=True)
class ProxyHeader:
    """What the header said. `source` is None when it carried no address to use
    (v1 UNKNOWN, v2 LOCAL or an unspecified family): keep the connection's own."""

    version: int
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    length: int  # bytes of the header; the payload starts after them


NEED_MORE: Final = None  # `parse_header` needs more bytes before it can answer


class TrustedSources:
    """The networks whose PROXY headers are believed (default: loopback only)."""

    def __init__(self, networks: list[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


LOOPBACK: Final = ["127.0.0.0/8", "::1/128"]


class HeaderReader:
    """The PROXY header at the start of one connection, read as its bytes arrive."""

    def __init__(self) -> None:
        self.received = b""  # the header's bytes so far

    def feed(self, data: bytes) -> tuple[ProxyHeader | None, bytes]:
        """(the header, the bytes after it) once the header is whole, (None, b"") until
        then; ProxyError for a malformed or unsupported one."""
        self.received += data
        header = parse_header(self.received)
        if header is None:
            return None, b""
        rest, self.received = self.received[header.length :], b""
        return header, rest


def parse_header(data: bytes) -> ProxyHeader | None:
    """Read a PROXY header at the start of `data`; None means "send more bytes"."""
    if data[:1] == b"\r":
        return _parse_v2(data)
    if data[:1] == b"P":
        return _parse_v1(data)
    if not data:
        return NEED_MORE
    raise ProxyError("no PROXY header: the connection must start with 'PROXY ' or the v2 signature")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyError(f"PROXY v1 line longer than {V1_MAX} bytes")
        if not V1_PREFIX.startswith(data[:6]):
            raise ProxyError("no PROXY header: the connection must start with 'PROXY '")
        return NEED_MORE
    try:
        line = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyError("PROXY v1 line is not ASCII") from None
    parts = line.split(" ")
    if parts[0] != "PROXY" or len(parts) < 2:
        raise ProxyError("no PROXY header: the connection must start with 'PROXY '")
    family = parts[1]
    if family == "UNKNOWN":  # the proxy could not tell; the rest of the line is ignored
        return ProxyHeader(1, None, None, end + 2)
    if family not in ("TCP4", "TCP6"):
        raise ProxyError(f"PROXY v1 family {family[:10]!r} is not TCP4, TCP6 or UNKNOWN")
    if len(parts) != 6:
        raise ProxyError(f"PROXY v1 {family} needs 4 fields after it, got {len(parts) - 2}")
    version = 4 if family == "TCP4" else 6
    source = (_v1_address(parts[2], version), _v1_port(parts[4]))
    destination = (_v1_address(parts[3], version), _v1_port(parts[5]))
    return ProxyHeader(1, source, destination, end + 2)


def _v1_address(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyError(f"PROXY v1 address {text[:45]!r} is not an IP address") from None
    if address.version != version:
        raise ProxyError(f"PROXY v1 address {text!r} is not IPv{version} as its family says")
    return str(address)


def _v1_port(text: str) -> int:
    # ASCII digits only, no sign, no leading zero (the spec's form), 0-65535
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or (text[0] == "0" and text != "0"):
        raise ProxyError(f"PROXY v1 port {text[:8]!r} is not a number from 0 to 65535")
    port = int(text)
    if port > 65535:
        raise ProxyError(f"PROXY v1 port {port} is above 65535")
    return port


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < V2_FIXED:
        if not V2_SIGNATURE.startswith(data[:12]):
            raise ProxyError("not a PROXY v2 signature")
        return NEED_MORE
    if data[:12] != V2_SIGNATURE:
        raise ProxyError("not a PROXY v2 signature")
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyError(f"PROXY v2 header says version {version}")
    if command not in (_LOCAL, _PROXY):
        raise ProxyError(f"PROXY v2 command {command} is neither LOCAL nor PROXY")
    family, transport = data[13] >> 4, data[13] & 0x0F
    (body,) = struct.unpack_from("!H", data, 14)
    if body > V2_MAX_BODY:
        raise ProxyError(f"PROXY v2 header of {body} bytes is longer than {V2_MAX_BODY}")
    length = V2_FIXED + body
    if len(data) < length:
        return NEED_MORE
    if command == _LOCAL:  # the proxy's own connection (a health check): no client to use
        return ProxyHeader(2, None, None, length)
    if family == 0:
        return ProxyHeader(2, None, None, length)
    if family not in (_INET, _INET6):
        raise ProxyError(f"PROXY v2 family {family} is not supported (only IPv4 and IPv6)")
    if transport not in (_STREAM, _DGRAM):
        raise ProxyError(f"PROXY v2 transport {transport} is neither stream nor datagram")
    size = 4 if family == _INET else 16
    if body < 2 * size + 4:
        raise ProxyError(f"PROXY v2 addresses need {2 * size + 4} bytes, the header has {body}")
    at = V2_FIXED
    source_ip = ipaddress.ip_address(data[at : at + size])
    destination_ip = ipaddress.ip_address(data[at + size : at + 2 * size])
    source_port, destination_port = struct.unpack_from("!HH", data, at + 2 * size)
    return ProxyHeader(
        2, (str(source_ip), source_port), (str(destination_ip), destination_port), length
    )


def encode_v1(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """The v1 line that says `source` connected to `destination`."""
    family = "TCP4" if ipaddress.ip_address(source[0]).version == 4 else "TCP6"
    line = f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
    return line.encode("ascii")


def encode_v2(
    source: tuple[str, int], destination: tuple[str, int], datagram: bool = False
) -> bytes:
    """The v2 header (command PROXY, no extensions): `source` connected to `destination`."""
    source_ip = ipaddress.ip_address(source[0])
    destination_ip = ipaddress.ip_address(destination[0])
    if source_ip.version != destination_ip.version:
        raise ValueError("source and destination must both be IPv4 or both IPv6")
    family = _INET if source_ip.version == 4 else _INET6
    transport = _DGRAM if datagram else _STREAM
    addresses = (
        source_ip.packed + destination_ip.packed + struct.pack("!HH", source[1], destination[1])
    )
    return (
        V2_SIGNATURE
        + bytes(((2 << 4) | _PROXY, (family << 4) | transport))
        + struct.pack("!H", len(addresses))
        + addresses
    )
