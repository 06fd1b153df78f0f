"""The ClientHello parser on real captured hellos (tests/data/hellos), in pieces, and broken."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lab.balancer.client_hello import MAX_HELLO_BYTES, ClientHello, HelloReader, NotTls, parse

HELLOS = Path(__file__).parent / "data" / "hellos"


def captured(name: str) -> bytes:
    return bytes.fromhex((HELLOS / f"{name}.hex").read_text())


def records(body: bytes, size: int) -> bytes:
    """The handshake body cut into TLS records of `size` bytes, as a client may send it."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"\x16\x03\x01" + len(p).to_bytes(2, "big") + p for p in pieces)


def handshake_body(hello: bytes) -> bytes:
    """The handshake message a single-record capture carries."""
    assert hello[0] == 0x16 and int.from_bytes(hello[3:5], "big") == len(hello) - 5
    return hello[5:]


def refused(data: bytes) -> str:
    with pytest.raises(NotTls) as caught:
        HelloReader().feed(data)
    return str(caught.value)


# What each client was asked to send (tests/data/hellos/README.md).
EXPECTED = {
    "python-sni": ("shop.lab.test", "TLSv1.3", (), False),
    "python-no-sni": (None, "TLSv1.3", (), False),
    "python-tls12-resumed": ("shop.lab.test", "TLSv1.2", (), False),
    "python-tls12-resumed-2": ("shop.lab.test", "TLSv1.2", (), True),
    "python-tls13-resumed": ("api.lab.test", "TLSv1.3", (), False),
    "python-tls13-resumed-2": ("api.lab.test", "TLSv1.3", (), True),
    "curl-alpn": ("api.lab.test", "TLSv1.3", ("h2", "http/1.1"), False),
    "openssl-many-extensions": ("shop.lab.test", "TLSv1.3", ("h2", "http/1.1"), False),
    "chromium": ("shop.lab.test", "TLSv1.3", ("h2", "http/1.1"), False),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_a_captured_hello_tells_its_name_version_alpn_and_resumption(name):
    data = captured(name)
    hello = parse(data)
    assert isinstance(hello, ClientHello)
    assert (hello.sni, hello.version, hello.alpn, hello.resumption) == EXPECTED[name]
    assert hello.size == len(data)


def test_versions_come_from_supported_versions_without_grease():
    assert parse(captured("curl-alpn")).versions == ("TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1")
    assert parse(captured("openssl-many-extensions")).versions == ("TLSv1.3",)
    # Chromium offers GREASE versions (0x?a?a) as well: they are not versions.
    assert parse(captured("chromium")).versions == ("TLSv1.3", "TLSv1.2")


def test_a_tls12_hello_without_supported_versions_offers_its_own_version():
    # (Python capped at TLS 1.2 sends no supported_versions extension: 43 is absent.)
    hello = parse(captured("python-tls12-resumed"))
    assert hello.versions == ("TLSv1.2",) and hello.version == "TLSv1.2"


@pytest.mark.parametrize("name", ["python-sni", "chromium", "openssl-many-extensions"])
def test_one_byte_at_a_time_waits_until_the_last_byte(name):
    data = captured(name)
    reader = HelloReader()
    answers = [reader.feed(data[i : i + 1]) for i in range(len(data))]
    assert answers[:-1] == [None] * (len(data) - 1)
    assert answers[-1].sni == EXPECTED[name][0]


@pytest.mark.parametrize("size", [1, 7, 100, 300])
def test_a_hello_split_over_several_records_and_reads(size):
    body = handshake_body(captured("chromium"))
    data = records(body, size)
    reader = HelloReader()
    rng = random.Random(size)
    at, hello = 0, None
    while hello is None:
        step = rng.randint(1, 200)
        hello = reader.feed(data[at : at + step])
        at += step
    assert at >= len(data) and hello.sni == "shop.lab.test" and hello.alpn == ("h2", "http/1.1")
    assert hello.size == len(data)


def test_every_truncation_waits_and_never_misreads():
    data = captured("curl-alpn")
    for end in range(len(data)):
        assert parse(data[:end]) is None, end


def test_plain_http_garbage_and_other_records_are_refused_with_why():
    assert "plain HTTP" in refused(b"GET / HTTP/1.1\r\nHost: shop.lab.test\r\n\r\n")
    assert "first byte is 0x53" in refused(b"SSH-2.0-OpenSSH_9.2\r\n")
    assert "SSLv2" in refused(b"\x80\x2e\x01\x00\x02")
    assert "record type 21" in refused(b"\x16\x03\x01\x00\x04\x01\x00\x00\x40" + b"\x15\x03\x03")
    assert "not TLS" in refused(b"\x16\x04")  # at once: no need to wait for more
    assert "type 2, not a ClientHello" in refused(b"\x16\x03\x03\x00\x04\x02\x00\x00\x00")
    assert "1 to 16384" in refused(b"\x16\x03\x01\x00\x00")
    assert "1 to 16384" in refused(b"\x16\x03\x01\x40\x01")


def test_a_hello_longer_than_16_kib_is_refused_before_it_arrives():
    head = b"\x16\x03\x01\x01\x00" + b"\x01" + (20_000).to_bytes(3, "big")
    assert "16 KiB" in refused(head)
    # Many small records: the whole hello, headers and all, must fit as well.
    assert str(MAX_HELLO_BYTES) in refused(records(b"\x01\x00\x30\x00" + b"\x00" * 12_000, 3))
    assert str(MAX_HELLO_BYTES) in refused(b"\x16\x03\x01\x40\x00")  # one full-size record


def test_lengths_that_lie_are_named():
    body = bytearray(handshake_body(captured("python-tls12-resumed")))  # 184 bytes, no padding
    # The session id length: offset 4 (header) + 2 (version) + 32 (random).
    lying = bytearray(body)
    lying[38] = 33
    assert "session id of 33 bytes" in refused(records(bytes(lying), 16_000))
    lying = bytearray(body)
    lying[38] = 255
    assert "the session id says 255 bytes" in refused(records(bytes(lying), 16_000))
    # The extensions length, grown by one: it now claims a byte the hello does not have.
    suites_at = 39 + body[38]
    suites = int.from_bytes(body[suites_at : suites_at + 2], "big")
    ext_at = suites_at + 2 + suites + 1 + body[suites_at + 2 + suites]
    lying = bytearray(body)
    lying[ext_at : ext_at + 2] = (int.from_bytes(body[ext_at : ext_at + 2], "big") + 1).to_bytes(
        2, "big"
    )
    assert "the extensions says" in refused(records(bytes(lying), 16_000))


def test_a_hello_with_a_bad_server_name_is_refused():
    def with_name(name: bytes) -> bytes:
        entry = b"\x00" + len(name).to_bytes(2, "big") + name
        listed = len(entry).to_bytes(2, "big") + entry
        ext = b"\x00\x00" + len(listed).to_bytes(2, "big") + listed
        hello = (
            b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + len(ext).to_bytes(2, "big") + ext
        )  # fmt: skip
        return records(b"\x01" + len(hello).to_bytes(3, "big") + hello, 16_000)

    assert parse(with_name(b"Shop.Lab.Test")).sni == "shop.lab.test"
    assert "not ASCII" in refused(with_name("bücher.test".encode()))
    assert "not a host name" in refused(with_name(b"shop lab"))
    assert "not a host name" in refused(with_name(b""))


def test_random_damage_gives_an_answer_never_a_crash():
    data = captured("chromium")
    rng = random.Random(14)
    outcomes = set()
    for _ in range(3000):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            answer = parse(bytes(damaged))
        except NotTls:
            outcomes.add("refused")
        else:
            outcomes.add("hello" if answer is not None else "waiting")
    assert outcomes == {"refused", "hello", "waiting"}
