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

MAX_HELLO_BYTES = 16_384  # records and all; nginx's preread buffer is 16k as well
MAX_RECORD = 16_384  # RFC 8446: a plaintext fragment is at most 2^14 bytes
HANDSHAKE = 22
CLIENT_HELLO = 1
EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_SESSION_TICKET = 35
EXT_PRE_SHARED_KEY = 41
EXT_SUPPORTED_VERSIONS = 43
VERSION_NAMES = {
    0x0304: "TLSv1.3",
    0x0303: "TLSv1.2",
    0x0302: "TLSv1.1",
    0x0301: "TLSv1",
    0x0300: "SSLv3",
}  # as Python's ssl names them (SSLSocket.version())
HTTP_METHODS = (b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"PRI ")
HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


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


class _Cursor:
    """Reads big-endian fields from a message; any read past its end is a lie to report."""

    __slots__ = ("data", "at", "end", "what")

    def __init__(self, data: bytes, start: int, end: int, what: str) -> None:
        self.data = data
        self.at = start
        self.end = end
        self.what = what

    def need(self, count: int, field: str) -> None:
        if self.at + count > self.end:
            raise NotTls(
                f"{field} says {count} bytes but only {self.end - self.at} remain in {self.what}"
            )

    def byte(self, field: str) -> int:
        self.need(1, field)
        self.at += 1
        return self.data[self.at - 1]

    def short(self, field: str) -> int:
        self.need(2, field)
        self.at += 2
        return (self.data[self.at - 2] << 8) | self.data[self.at - 1]

    def block(self, size: int, field: str) -> _Cursor:
        """The next `size` bytes as a cursor of their own; this one moves past them."""
        self.need(size, field)
        inner = _Cursor(self.data, self.at, self.at + size, field)
        self.at += size
        return inner

    def left(self) -> int:
        return self.end - self.at


def _client_hello(message: bytes, size: int) -> ClientHello:
    hello = _Cursor(message, 0, len(message), "the ClientHello")
    legacy = hello.short("the version")
    hello.block(32, "the random")
    session_id = hello.block(hello.byte("the session id length"), "the session id")
    if session_id.left() > 32:
        raise NotTls(f"a session id of {session_id.left()} bytes (at most 32)")
    suites = hello.short("the cipher suites length")
    if suites == 0 or suites % 2:
        raise NotTls(f"a cipher suite list of {suites} bytes (a non-empty, even number)")
    hello.block(suites, "the cipher suites")
    methods = hello.byte("the compression methods length")
    if methods == 0:
        raise NotTls("no compression methods (a hello lists at least null)")
    hello.block(methods, "the compression methods")
    sni: str | None = None
    offered: list[int] = []
    alpn: list[str] = []
    ticket = psk = False
    if hello.left():  # extensions are optional (a bare TLS 1.0 hello has none)
        extensions = hello.block(hello.short("the extensions length"), "the extensions")
        if hello.left():
            raise NotTls(f"{hello.left()} bytes after the extensions")
        seen: set[int] = set()
        while extensions.left():
            kind = extensions.short("an extension type")
            data = extensions.block(extensions.short("an extension length"), f"extension {kind}")
            if kind in seen:
                raise NotTls(f"extension {kind} appears twice")
            seen.add(kind)
            if kind == EXT_SERVER_NAME:
                sni = _server_name(data)
            elif kind == EXT_SUPPORTED_VERSIONS:
                offered = _versions(data)
            elif kind == EXT_ALPN:
                alpn = _alpn(data)
            elif kind == EXT_SESSION_TICKET:
                ticket = data.left() > 0  # empty: "I can take a ticket", not "here is one"
            elif kind == EXT_PRE_SHARED_KEY:
                psk = True
    if not offered:
        offered = [legacy]  # before TLS 1.3 the hello's own version is the highest offered
    versions = tuple(
        VERSION_NAMES[v] for v in sorted(set(offered), reverse=True) if v in VERSION_NAMES
    )
    # A TLS 1.3 client sends a random 32-byte session id for middleboxes (RFC 8446 D.4),
    # so a session id means resumption only from a client that cannot do 1.3.
    resumed_id = session_id.left() > 0 and 0x0304 not in offered
    return ClientHello(sni, versions, tuple(alpn), ticket or psk or resumed_id, size)


def _server_name(data: _Cursor) -> str | None:
    names = data.block(data.short("the server name list length"), "the server name list")
    if data.left():
        raise NotTls("bytes after the server name list")
    found: str | None = None
    while names.left():
        kind = names.byte("a server name type")
        raw = names.block(names.short("a server name length"), "a server name")
        if kind != 0 or found is not None:  # only host_name exists, and only once
            continue
        text = raw.data[raw.at : raw.end]
        found = _host_name(text)
    return found


def _host_name(raw: bytes) -> str:
    try:
        name = raw.decode("ascii").lower()
    except UnicodeDecodeError:
        raise NotTls("the SNI name is not ASCII (names go as IDNA A-labels)") from None
    if not name or len(name) > 253 or not set(name) <= HOST_CHARS or ".." in name:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise NotTls(f"the SNI name {shown!r} is not a host name")
    return name.rstrip(".")


def _versions(data: _Cursor) -> list[int]:
    listed = data.block(data.byte("the supported versions length"), "the supported versions")
    if listed.left() % 2 or data.left():
        raise NotTls("a supported versions list that is not whole 2-byte versions")
    versions = []
    while listed.left():
        version = listed.short("a version")
        if (version & 0x0F0F) != 0x0A0A:  # GREASE values (RFC 8701) mean nothing
            versions.append(version)
    return versions


def _alpn(data: _Cursor) -> list[str]:
    listed = data.block(data.short("the ALPN list length"), "the ALPN list")
    names = []
    while listed.left():
        name = listed.block(listed.byte("a protocol name length"), "a protocol name")
        names.append(name.data[name.at : name.end].decode("latin-1"))
    return names
