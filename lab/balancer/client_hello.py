"""The ClientHello: the one message of a TLS connection a passthrough balancer can read.

A client opens TLS with a ClientHello, in the clear: the server name it wants (SNI),
the versions and application protocols (ALPN) it offers, and whether it hopes to
resume an earlier session. Everything after it is encrypted, so this is all a Layer 4
balancer that does not decrypt ever learns (nginx's ssl_preread, HAProxy's
req.ssl_sni). The parser is pure: bytes go in, in pieces as reads deliver them, and
out comes "need more" (None), the hello, or NotTls saying what was wrong.

Record layer (RFC 8446 5.1): type 22 (handshake), a version, a 2-byte length, then the
fragment. A hello may span several records and arrive over several reads; a record
may also carry less than one message. Every length is checked against what holds it,
because a client may lie, and the whole hello must fit in MAX_HELLO_BYTES.
"""

from __future__ import annotations

from typing import Final

# Final: compiled, these become constants rather than a dictionary lookup at each use.
MAX_HELLO_BYTES: Final = 16_384  # records and all; nginx's preread buffer is 16k as well
MAX_RECORD: Final = 16_384  # RFC 8446: a plaintext fragment is at most 2^14 bytes
HANDSHAKE: Final = 22
CLIENT_HELLO: Final = 1
EXT_SERVER_NAME: Final = 0
EXT_ALPN: Final = 16
EXT_SESSION_TICKET: Final = 35
EXT_PRE_SHARED_KEY: Final = 41
EXT_SUPPORTED_VERSIONS: Final = 43
TLS13: Final = 0x0304
# Highest first, named as Python's ssl names them (SSLSocket.version()).
VERSIONS: Final = (
    (0x0304, "TLSv1.3"),
    (0x0303, "TLSv1.2"),
    (0x0302, "TLSv1.1"),
    (0x0301, "TLSv1"),
    (0x0300, "SSLv3"),
)
HTTP_METHODS: Final = (
    b"GET ",
    b"POST",
    b"HEAD",
    b"PUT ",
    b"DELE",
    b"OPTI",
    b"PATC",
    b"CONN",
    b"PRI ",
)
HOST_BYTES: Final = b"abcdefghijklmnopqrstuvwxyz0123456789-._"


class NotTls(ValueError):
    """The bytes are not (or no longer) a ClientHello; the message says why."""


class ClientHello:
    """What a ClientHello offers, as far as routing and the lessons care."""

    __slots__ = ("sni", "versions", "alpn", "resumption", "size")

    def __init__(
        self,
        sni: str | None,
        versions: tuple[str, ...],
        alpn: tuple[str, ...],
        resumption: bool,
        size: int,
    ) -> None:
        self.sni = sni  # lower-case host name, or None when the client sent none
        self.versions = versions  # offered, highest first ("TLSv1.3", "TLSv1.2")
        self.alpn = alpn  # ("h2", "http/1.1"), in the client's order
        self.resumption = resumption  # offers to resume: a ticket, a PSK or a session id
        self.size = size  # bytes of records that carried the hello

    @property
    def version(self) -> str | None:
        """The highest version offered: what a passthrough balancer can say of it."""
        return self.versions[0] if self.versions else None

    def __repr__(self) -> str:
        return (
            f"ClientHello(sni={self.sni!r}, versions={self.versions!r}, alpn={self.alpn!r}, "
            f"resumption={self.resumption})"
        )


class HelloReader:
    """Feed it the client's bytes as they come; it answers once the hello is whole."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> ClientHello | None:
        """Return the hello, or None to wait for more bytes; raise NotTls if it cannot be."""
        self.buffer += data
        return parse(self.buffer)


def parse(data: bytes) -> ClientHello | None:
    """Parse a ClientHello from the start of a connection's bytes (see the docstring)."""
    message, used = _handshake_message(data)
    if message is None:
        return None
    return _client_hello(message, used)


def _handshake_message(data: bytes) -> tuple[bytes | None, int]:
    """Join record fragments until the first handshake message is whole."""
    body = b""
    offset = 0
    wanted = -1  # the handshake message's length with its 4-byte header, once known
    while True:
        if len(data) < offset + 5:
            _check_start(data, offset)
            return None, 0
        kind = data[offset]
        size = (data[offset + 3] << 8) | data[offset + 4]
        if kind != HANDSHAKE:
            if offset == 0:
                raise NotTls(_not_handshake(data))
            raise NotTls(f"record type {kind} came before the ClientHello was complete")
        if data[offset + 1] != 3:
            raise NotTls(f"record version {data[offset + 1]}.{data[offset + 2]} is not TLS")
        if size == 0 or size > MAX_RECORD:
            raise NotTls(f"a handshake record of {size} bytes (TLS allows 1 to {MAX_RECORD})")
        end = offset + 5 + size
        if end > MAX_HELLO_BYTES:
            raise NotTls(f"the ClientHello does not fit in {MAX_HELLO_BYTES} bytes")
        if len(data) < end:
            if wanted < 0:  # judge the message's header as soon as it is in
                _message_length(body + data[offset + 5 :])
            return None, 0
        body += data[offset + 5 : end]
        offset = end
        if wanted < 0:
            wanted = _message_length(body)
        if 0 <= wanted <= len(body):
            return body[4:wanted], offset


def _message_length(body: bytes) -> int:
    """The first handshake message's length with its header; -1 until the header is in."""
    if body and body[0] != CLIENT_HELLO:
        raise NotTls(f"the first handshake message is type {body[0]}, not a ClientHello")
    if len(body) < 4:
        return -1
    wanted = 4 + ((body[1] << 16) | (body[2] << 8) | body[3])
    if wanted + 5 > MAX_HELLO_BYTES:
        raise NotTls(
            f"a ClientHello of {wanted - 4} bytes is longer than the "
            f"{MAX_HELLO_BYTES // 1024} KiB limit"
        )
    return wanted


def _check_start(data: bytes, offset: int) -> None:
    """Refuse early what can never become a hello, rather than wait for more."""
    if len(data) > offset:
        if data[offset] != HANDSHAKE:
            if offset == 0:
                raise NotTls(_not_handshake(data))
            raise NotTls(f"record type {data[offset]} came before the ClientHello was complete")
        if len(data) > offset + 1 and data[offset + 1] != 3:
            raise NotTls(f"record version {data[offset + 1]} is not TLS")


def _not_handshake(data: bytes) -> str:
    if data[:4] in HTTP_METHODS or data[:3] == b"GET":
        return "plain HTTP sent to a TLS port (expected a TLS ClientHello)"
    if data[0] & 0x80:
        return "an SSLv2-style hello: SSLv2 is not TLS, and no current client sends one"
    return f"not a TLS handshake: the first byte is {data[0]:#04x}, a ClientHello starts 0x16"


class _Reader:
    """Reads one message's big-endian fields. Each read names the end of what holds it,
    so a length that claims more than its container has is caught, and named."""

    __slots__ = ("data", "at")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self, end: int, field: str) -> int:
        if self.at + 1 > end:
            raise NotTls(f"the ClientHello ends inside {field}")
        self.at += 1
        return self.data[self.at - 1]

    def short(self, end: int, field: str) -> int:
        if self.at + 2 > end:
            raise NotTls(f"the ClientHello ends inside {field}")
        self.at += 2
        return (self.data[self.at - 2] << 8) | self.data[self.at - 1]

    def block(self, size: int, end: int, field: str) -> int:
        """Where the next `size` bytes end, once sure they fit before `end`."""
        if self.at + size > end:
            raise NotTls(f"{field} says {size} bytes but only {end - self.at} remain")
        return self.at + size


def _client_hello(message: bytes, size: int) -> ClientHello:
    read = _Reader(message)
    end = len(message)
    legacy = read.short(end, "the version")
    read.at = read.block(32, end, "the random")
    session_end = read.block(read.byte(end, "the session id length"), end, "the session id")
    session_id = session_end - read.at
    if session_id > 32:
        raise NotTls(f"a session id of {session_id} bytes (at most 32)")
    read.at = session_end
    suites = read.short(end, "the cipher suites length")
    if suites == 0 or suites % 2:
        raise NotTls(f"a cipher suite list of {suites} bytes (a non-empty, even number)")
    read.at = read.block(suites, end, "the cipher suites")
    methods = read.byte(end, "the compression methods length")
    if methods == 0:
        raise NotTls("no compression methods (a hello lists at least null)")
    read.at = read.block(methods, end, "the compression methods")
    sni: str | None = None
    offered: list[int] | None = None
    alpn: list[str] | None = None
    ticket: bool | None = None
    psk = named = False
    if read.at < end:  # extensions are optional (a bare TLS 1.0 hello has none)
        listed = read.block(read.short(end, "the extensions length"), end, "the extensions")
        if listed < end:
            raise NotTls(f"{end - listed} bytes after the extensions")
        while read.at < listed:
            kind = read.short(listed, "an extension type")
            stop = read.block(read.short(listed, "an extension length"), listed, "an extension")
            # Twice is forbidden (RFC 8446 4.2); for what routing reads it would also be
            # ambiguous: the balancer might route by one name and the server serve another.
            if kind == EXT_SERVER_NAME:
                if named:
                    raise NotTls("the server name extension appears twice")
                named = True
                sni = _server_name(read, stop)
            elif kind == EXT_SUPPORTED_VERSIONS:
                if offered is not None:
                    raise NotTls("the supported versions extension appears twice")
                offered = _versions(read, stop)
            elif kind == EXT_ALPN:
                if alpn is not None:
                    raise NotTls("the ALPN extension appears twice")
                alpn = _alpn(read, stop)
            elif kind == EXT_SESSION_TICKET:
                if ticket is not None:
                    raise NotTls("the session ticket extension appears twice")
                ticket = stop > read.at  # empty: "I can take a ticket", not "here is one"
            elif kind == EXT_PRE_SHARED_KEY:
                if psk:
                    raise NotTls("the pre_shared_key extension appears twice")
                psk = True
            read.at = stop
    if not offered:
        offered = [legacy]  # before TLS 1.3 the hello's own version is the highest offered
    versions = tuple([name for code, name in VERSIONS if code in offered])
    # A TLS 1.3 client sends a random 32-byte session id for middleboxes (RFC 8446 D.4),
    # so a session id means resumption only from a client that cannot do 1.3.
    resumed_id = session_id > 0 and TLS13 not in offered
    resumption = bool(ticket) or psk or resumed_id
    return ClientHello(sni, versions, tuple(alpn or ()), resumption, size)


def _server_name(read: _Reader, end: int) -> str | None:
    listed = read.block(read.short(end, "the server name list length"), end, "the server name list")
    if listed != end:
        raise NotTls("bytes after the server name list")
    found: str | None = None
    while read.at < listed:
        kind = read.byte(listed, "a server name type")
        stop = read.block(read.short(listed, "a server name length"), listed, "a server name")
        if kind == 0 and found is None:  # only host_name exists, and only once
            found = _host_name(read.data[read.at : stop].lower())
        read.at = stop
    return found


def _host_name(raw: bytes) -> str:
    if not raw.isascii():
        raise NotTls("the SNI name is not ASCII (names go as IDNA A-labels)")
    # translate(None, HOST_BYTES) deletes every allowed byte: what is left does not belong.
    if not raw or len(raw) > 253 or raw.translate(None, HOST_BYTES) or raw.find(b"..") >= 0:
        name = raw.decode("ascii")
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise NotTls(f"the SNI name {shown!r} is not a host name")
    return raw.decode("ascii").rstrip(".")


def _versions(read: _Reader, end: int) -> list[int]:
    listed = read.block(read.byte(end, "the supported versions length"), end, "the versions")
    if (listed - read.at) % 2 or listed != end:
        raise NotTls("a supported versions list that is not whole 2-byte versions")
    versions = []
    while read.at < listed:
        version = read.short(listed, "a version")
        if (version & 0x0F0F) != 0x0A0A:  # GREASE values (RFC 8701) mean nothing
            versions.append(version)
    return versions


def _alpn(read: _Reader, end: int) -> list[str]:
    listed = read.block(read.short(end, "the ALPN list length"), end, "the ALPN list")
    names = []
    while read.at < listed:
        stop = read.block(read.byte(listed, "a protocol name length"), listed, "a protocol name")
        names.append(read.data[read.at : stop].decode("latin-1"))
        read.at = stop
    return names
