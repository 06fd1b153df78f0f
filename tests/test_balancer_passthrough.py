"""Layer 4 TLS passthrough with real sockets: the balancer reads the ClientHello's server
name, routes on it, and pipes the encrypted bytes to TLS backends it holds no key for."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from conftest import EventReader, Http, split, wait_for
from test_vocabulary import problems
from tls_backends import TlsBackends

from lab.supervisor import Supervisor

HELLO = bytes.fromhex(
    (Path(__file__).parent / "data" / "hellos" / "python-sni.hex").read_text()
)  # a real ClientHello, for the broken-hello tests


class Passthrough:
    """Three TLS backends, b1..b3, and a balancer in mode tcp with tls.mode passthrough."""

    def __init__(self, supervisor: Supervisor, backends: TlsBackends) -> None:
        self.backends = backends
        args = ["balancer", "--mode", "tcp", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
        for name, address in backends.addresses.items():
            args += ["--backend", f"{name}={address}"]
        child = supervisor.start("balancer", args)
        self.listen, self.admin_address = child.addresses["listen"], child.addresses["admin"]
        self.readers: list[EventReader] = []

    def admin(self, method: str, path: str, payload=None):
        client = Http(self.admin_address)
        try:
            return client.json(method, path, payload)
        finally:
            client.close()

    def configure(self, **settings) -> None:
        status, answer = self.admin("PUT", "/config", settings)
        assert status == 200, answer

    def events(self) -> EventReader:
        reader = EventReader(self.admin_address)
        wait_for(
            lambda: self.admin("GET", "/state")[1]["events"]["subscribers"] >= 1,
            what="the events reader",
        )
        self.readers.append(reader)
        return reader

    def idle_state(self) -> dict | None:
        """/state once no backend has a connection open (None until then)."""
        state = self.admin("GET", "/state")[1]
        return state if all(b["active"] == 0 for b in state["backends"]) else None

    def get(self, sni: str | None, before: bytes = b"") -> str:
        return self.backends.get(self.listen, sni, before)[0]


@pytest.fixture
def tls_lab():
    backends = TlsBackends(["b1", "b2", "b3"])
    try:
        with Supervisor() as supervisor:
            lab = Passthrough(supervisor, backends)
            yield lab
            for reader in lab.readers:
                reader.close()
    finally:
        backends.close()


def send_raw(address: str, data: bytes, close_write: bool = True, timeout: float = 10) -> bytes:
    """Send bytes, optionally half-close, and read until the balancer closes."""
    with socket.create_connection(split(address), timeout=timeout) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def test_passthrough_reaches_the_tls_backend_and_the_balancer_holds_no_key(tls_lab):
    tls_lab.configure(tls={"mode": "passthrough"})
    tls = tls_lab.admin("GET", "/state")[1]["settings"]["tls"]
    assert (tls["mode"], tls["certificate"], tls["key"]) == ("passthrough", "", "")
    events = tls_lab.events()
    # The client checks the backend's chain and name against the test CA, end to end:
    # only the backend's key can complete this handshake.
    backend, version = tls_lab.backends.get(tls_lab.listen, "shop.lab.test")
    assert backend == "b1" and version == "TLSv1.3"
    assert tls_lab.backends.seen_sni["b1"] == ["shop.lab.test"]  # the hello arrived as sent
    route = events.wait("route")
    assert route["tls"] == {
        "sni": "shop.lab.test", "version": "TLSv1.3", "terminated": False, "resumed": False
    }  # fmt: skip
    assert route["mode"] == "tcp" and route["backend"] == "b1"
    done = events.wait("done")
    assert done["bytes"] > 1000 and done["bytes_up"] > 500  # the whole TLS conversation
    assert problems(route) == [] and problems(done) == []


def test_sni_rules_send_shop_and_api_to_different_pools(tls_lab):
    tls_lab.configure(
        pools=[
            {"name": "shop", "backends": ["b1"]},
            {"name": "api", "backends": ["b2"]},
            {"name": "labs", "backends": ["b3"]},
        ],
        rules=[
            {"name": "shop", "sni": "shop.lab.test", "pool": "shop"},
            {"name": "api", "host": "api.lab.test", "pool": "api"},
            {"name": "labs", "sni": "*.lab.test", "pool": "labs"},
        ],
        tls={"mode": "passthrough"},
    )
    events = tls_lab.events()
    assert [tls_lab.get("shop.lab.test") for _ in range(3)] == ["b1"] * 3
    assert [tls_lab.get("api.lab.test") for _ in range(3)] == ["b2"] * 3
    assert [tls_lab.get("www.lab.test") for _ in range(2)] == ["b3"] * 2
    assert tls_lab.get("localhost") in ("b1", "b2", "b3")  # no rule: the default pool
    reasons = [
        e["reason"] for e in wait_for(lambda: len(events.of("route")) >= 9 and events.of("route"))
    ]
    assert reasons[0].startswith("sni shop.lab.test matched rule shop -> pool shop; ")
    assert reasons[3].startswith(
        "sni api.lab.test matched rule api -> pool api (a host rule: at Layer 4 the host is "
        "the SNI name); "
    )
    assert reasons[6].startswith("sni www.lab.test matched rule labs -> pool labs; ")
    assert reasons[8].startswith("sni localhost matched no rule -> pool default; ")
    assert [e.get("rule") for e in events.of("route")[:9]] == (
        ["shop"] * 3 + ["api"] * 3 + ["labs"] * 2 + [None]
    )
    assert all(problems(e) == [] for e in events.of("route"))


def test_consistent_hash_on_sni_keeps_each_name_on_one_backend(tls_lab):
    tls_lab.configure(algorithm="consistent-hash", hash_key="sni", tls={"mode": "passthrough"})
    events = tls_lab.events()
    names = ["shop.lab.test", "api.lab.test", "localhost"]
    landed = {name: {tls_lab.get(name) for _ in range(4)} for name in names}
    assert all(len(backends) == 1 for backends in landed.values()), landed
    route = events.wait("route")
    assert "key shop.lab.test (sni)" in route["reason"]


def test_a_hello_without_sni_goes_to_no_sni_pool_or_is_closed_with_a_reason(tls_lab):
    tls_lab.configure(
        pools=[{"name": "fallback", "backends": ["b3"]}],
        tls={"mode": "passthrough", "no_sni_pool": "fallback"},
    )
    events = tls_lab.events()
    assert [tls_lab.get(None) for _ in range(2)] == ["b3", "b3"]
    assert tls_lab.backends.seen_sni["b3"] == [None, None]
    route = events.wait("route")
    assert route["reason"].startswith(
        "no SNI in the ClientHello -> pool fallback (tls.no_sni_pool)"
    )
    assert route["tls"]["sni"] is None and route["pool"] == "fallback"

    tls_lab.configure(tls={"no_sni_pool": ""})
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        tls_lab.get(None)
    error = events.wait("error")
    assert "has no server name (SNI) and tls.no_sni_pool is not set" in error["reason"]
    assert problems(error) == []
    assert tls_lab.get("shop.lab.test") in ("b1", "b2", "b3")  # the daemon keeps running


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"GET / HTTP/1.1\r\nHost: shop.lab.test\r\n\r\n", "plain HTTP sent to a TLS port"),
        (b"\x00\xffgarbage" * 10, "first byte is 0x00"),
        (HELLO[:5] + b"\x02" + HELLO[6:], "type 2, not a ClientHello"),
        (HELLO[:200], "the client closed after 200 bytes of an unfinished ClientHello"),
    ],
    ids=["plain-http", "garbage", "server-hello", "truncated"],
)
def test_garbage_and_truncated_hellos_close_with_an_error_event(tls_lab, data, why):
    tls_lab.configure(tls={"mode": "passthrough"})
    events = tls_lab.events()
    assert send_raw(tls_lab.listen, data) == b""  # closed, and nothing reached a backend
    error = events.wait("error")
    assert why in error["reason"] and problems(error) == []
    assert not events.of("route")
    assert tls_lab.get("api.lab.test") in ("b1", "b2", "b3")
    state = wait_for(lambda: tls_lab.idle_state(), what="the good connection to end")
    assert state["errors"]["tls"] == 1 and sum(b["total"] for b in state["backends"]) == 1


def test_a_hello_that_never_finishes_is_closed_by_the_client_header_timeout(tls_lab):
    tls_lab.configure(tls={"mode": "passthrough"}, timeouts={"client_header_ms": 300})
    events = tls_lab.events()
    assert send_raw(tls_lab.listen, HELLO[:100], close_write=False) == b""
    error = events.wait("error")
    assert error["reason"].startswith(
        "no complete ClientHello within 300 ms (timeouts.client_header_ms; 100 bytes came)"
    )
    assert tls_lab.get("shop.lab.test") in ("b1", "b2", "b3")


def test_a_proxy_header_comes_first_then_the_hello(tls_lab):
    tls_lab.configure(
        tls={"mode": "passthrough"},
        proxy_protocol={"accept": True, "trusted": "127.0.0.1/32"},
    )
    events = tls_lab.events()
    proxy = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 443\r\n"
    assert tls_lab.get("api.lab.test", before=proxy) in ("b1", "b2", "b3")
    route = events.wait("route")
    assert route["client"] == "203.0.113.7" and route["tls"]["sni"] == "api.lab.test"


def test_path_rules_at_layer_4_are_refused_because_it_is_encrypted(tls_lab):
    tls_lab.configure(tls={"mode": "passthrough"}, pools=[{"name": "api", "backends": ["b2"]}])
    status, answer = tls_lab.admin(
        "PUT", "/config", {"rules": [{"path_prefix": "/api", "pool": "api"}]}
    )
    assert status == 400
    assert "encrypted: a Layer 4 balancer cannot see the path" in answer["error"]
    assert tls_lab.get("shop.lab.test") in ("b1", "b2", "b3")
