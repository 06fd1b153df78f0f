"""The PROXY protocol parser (lab.proxy_protocol) on headers written out byte by byte.

The v2 headers below are spelled out from the specification's layout (not made
by `encode_v2`), so the parser and the encoder are each checked against the
spec, and then against each other.
"""

from __future__ import annotations

import pytest

from lab.proxy_protocol import (
    LOOPBACK,
    HeaderReader,
    ProxyError,
    TrustedSources,
    encode_v1,
    encode_v2,
    parse_header,
)

SIG = bytes.fromhex("0d0a0d0a000d0a515549540a")
# v2, PROXY, TCP over IPv4, 12 bytes: 203.0.113.7:51000 -> 127.0.0.1:8080
V2_TCP4 = SIG + bytes.fromhex("21 11 000c cb007107 7f000001 c738 1f90")
# v2, PROXY, TCP over IPv6, 36 bytes: [2001:db8::1]:443 -> [::1]:8080
V2_TCP6 = SIG + bytes.fromhex(
    " ".join(
        ["21 21 0024", "20010db8000000000000000000000001", "00000000000000000000000000000001"]
        + ["01bb 1f90"]
    )
)
# v2, LOCAL (the proxy's own health check), no addresses
V2_LOCAL = SIG + bytes.fromhex("20 00 0000")
# v2, PROXY, IPv4 with two TLVs after the addresses (ALPN "h2", authority "shop.lab.test")
V2_TLVS = SIG + bytes.fromhex(
    " ".join(["21 11 0021 cb007107 7f000001 c738 1f90", "01 0002 6832", "02 000d"])
    + b"shop.lab.test".hex()
)


def test_v1_tcp4_gives_the_client_and_where_the_payload_starts():
    data = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 8080\r\nGET / HTTP/1.1\r\n"
    header = parse_header(data)
    assert header is not None
    assert header.version == 1
    assert header.source == ("203.0.113.7", 51000)
    assert header.destination == ("127.0.0.1", 8080)
    assert data[header.length :] == b"GET / HTTP/1.1\r\n"


def test_v1_tcp6_and_unknown():
    header = parse_header(b"PROXY TCP6 2001:db8::1 ::1 443 8080\r\n")
    assert header is not None and header.source == ("2001:db8::1", 443)
    unknown = parse_header(b"PROXY UNKNOWN ffff:: ffff:: 1 2\r\nrest")
    assert unknown is not None and unknown.source is None and unknown.length == 33


@pytest.mark.parametrize("cut", [1, 5, 6, 20, 44])
def test_a_v1_line_cut_short_asks_for_more(cut):
    assert parse_header(b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 8080\r\n"[:cut]) is None


@pytest.mark.parametrize(
    "line, why",
    [
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "family"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "4 fields"),
        (b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n", "not an IP address"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "not IPv4"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "above 65535"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "not a number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "not a number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 \xd9\xa1 2\r\n", "not ASCII"),
        (b"PROXY TCP4 " + b"1" * 120, "longer than 107"),
        (b"GET / HTTP/1.1\r\n\r\n", "no PROXY header"),
        (b"PRoXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "no PROXY header"),
    ],
)
def test_malformed_v1_lines_are_refused_with_a_reason(line, why):
    with pytest.raises(ProxyError, match=why):
        parse_header(line)


def test_v2_ipv4():
    header = parse_header(V2_TCP4 + b"payload")
    assert header is not None
    assert (header.version, header.source, header.destination) == (
        2,
        ("203.0.113.7", 51000),
        ("127.0.0.1", 8080),
    )
    assert (V2_TCP4 + b"payload")[header.length :] == b"payload"


def test_v2_ipv6_local_and_extensions():
    six = parse_header(V2_TCP6)
    assert six is not None and six.source == ("2001:db8::1", 443)
    local = parse_header(V2_LOCAL + b"x")
    assert local is not None and local.source is None and local.length == 16
    with_tlvs = parse_header(V2_TLVS + b"GET")
    assert with_tlvs is not None and with_tlvs.source == ("203.0.113.7", 51000)
    assert with_tlvs.length == len(V2_TLVS)  # the extensions are skipped, not read as payload


@pytest.mark.parametrize("cut", [1, 11, 12, 15, 16, 27])
def test_a_v2_header_cut_short_asks_for_more(cut):
    assert parse_header(V2_TCP4[:cut]) is None


@pytest.mark.parametrize(
    "data, why",
    [
        (SIG + bytes.fromhex("11 11 000c") + bytes(12), "version 1"),
        (SIG + bytes.fromhex("22 11 000c") + bytes(12), "command 2"),
        (SIG + bytes.fromhex("21 31 00d8") + bytes(216), "family 3 is not supported"),
        (SIG + bytes.fromhex("21 13 000c") + bytes(12), "transport 3"),
        (SIG + bytes.fromhex("21 11 0008") + bytes(8), "need 12 bytes"),
        (SIG + bytes.fromhex("21 11 ffff"), "longer than 2048"),
        (b"\r\n\r\n\x00\r\nQUIT!" + bytes(4), "signature"),
        (b"\r\nGET", "signature"),
    ],
)
def test_malformed_or_unsupported_v2_headers_are_refused_with_a_reason(data, why):
    with pytest.raises(ProxyError, match=why):
        parse_header(data)


def test_the_encoders_write_what_the_spec_says():
    assert encode_v2(("203.0.113.7", 51000), ("127.0.0.1", 8080)) == V2_TCP4
    assert encode_v2(("2001:db8::1", 443), ("::1", 8080)) == V2_TCP6
    assert encode_v1(("127.0.0.9", 40000), ("127.0.0.1", 8080)) == (
        b"PROXY TCP4 127.0.0.9 127.0.0.1 40000 8080\r\n"
    )
    with pytest.raises(ValueError, match="both"):
        encode_v2(("127.0.0.1", 1), ("::1", 2))


def test_only_trusted_sources_are_believed():
    trusted = TrustedSources(LOOPBACK)
    assert trusted.trusts("127.0.0.1") and trusted.trusts("127.3.4.5") and trusted.trusts("::1")
    assert not trusted.trusts("192.0.2.10")
    assert not trusted.trusts("not-an-address")
    assert TrustedSources(["10.0.0.0/8"]).trusts("10.1.2.3")


def test_a_reader_takes_a_header_in_pieces_and_hands_back_what_follows():
    reader = HeaderReader()
    whole = encode_v2(("203.0.113.7", 51000), ("127.0.0.1", 8080)) + b"GET / HTTP/1.1\r\n"
    pieces = [whole[i : i + 5] for i in range(0, len(whole), 5)]
    header, rest, fed = None, b"", 0
    while header is None:  # five bytes at a time, as a slow network may give them
        assert rest == b""
        header, rest = reader.feed(pieces[fed])
        fed += 1
    assert header.source == ("203.0.113.7", 51000)
    assert rest + b"".join(pieces[fed:]) == b"GET / HTTP/1.1\r\n"
    with pytest.raises(ProxyError, match="no PROXY header"):
        HeaderReader().feed(b"GET / HTTP/1.1\r\n")
