"""Layer 7 TLS termination on real sockets: clients verify the balancer's chain against a
test CA, backends get plain HTTP (or TLS again, with tls.upstream), and every bad input
gets a clear answer and an error event while the balancer keeps running."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading

import pytest
from conftest import Http, Lab, raw_exchange, split, wait_for
from test_vocabulary import problems
from tls_helpers import EchoBackend, https_request, make_pems, tls_settings

from lab.supervisor import Supervisor

GET = b"GET /who HTTP/1.1\r\nHost: shop.lab.test\r\n\r\n"


@pytest.fixture
def pems(tmp_path):
    return make_pems(tmp_path)


@pytest.fixture
def echo():
    backend = EchoBackend()
    yield backend
    backend.stop()


@pytest.fixture
def tls_lab(echo):
    """A balancer (started by the test) in front of one echo backend, e1."""
    with Supervisor() as supervisor:
        lab = Lab(supervisor)
        lab.backends["e1"] = echo.address
        yield lab
        for reader in lab._readers:
            reader.close()


def tls_flags(pems) -> list[str]:
    return ["--tls", "terminate", "--tls-cert", str(pems.certificate), "--tls-key", str(pems.key)]


def test_a_terminated_request_reaches_the_backend_as_plain_http_saying_https(tls_lab, pems):
    tls_lab.start_balancer(*tls_flags(pems))
    events = tls_lab.events()
    claim = b"GET /who HTTP/1.1\r\nHost: shop.lab.test\r\nX-Forwarded-Proto: http\r\n\r\n"
    [(status, seen)] = https_request(tls_lab.listen, pems.client_context(), [claim])
    assert status == 200
    assert seen["tls"] is False  # the balancer decrypted; the backend got plain HTTP
    assert seen["headers"]["x-forwarded-proto"] == ["https"]  # ours only, not the client's
    assert seen["headers"]["x-forwarded-for"] == ["127.0.0.1"]
    route = events.wait("route", path="/who")
    assert route["tls"] == {
        "sni": "shop.lab.test",
        "version": "TLSv1.3",
        "terminated": True,
        "resumed": False,
    }
    assert problems(route) == []


def test_plain_http_says_http_and_drops_the_clients_claim(tls_lab):
    tls_lab.start_balancer()
    client = Http(tls_lab.listen)
    try:
        status, _, body = client.get("/", headers={"X-Forwarded-Proto": "https"})
    finally:
        client.close()
    assert status == 200
    import json

    assert json.loads(body)["headers"]["x-forwarded-proto"] == ["http"]


def test_keep_alive_over_tls_carries_several_requests(tls_lab, pems):
    tls_lab.start_balancer(*tls_flags(pems))
    events = tls_lab.events()
    answers = https_request(tls_lab.listen, pems.client_context(), [GET] * 3)
    assert [status for status, _ in answers] == [200, 200, 200]
    assert len({seen["connection"] for _, seen in answers}) == 1  # one pooled upstream
    routes = wait_for(lambda: len(events.of("route")) >= 3 and events.of("route"))
    assert [r["tls"]["sni"] for r in routes] == ["shop.lab.test"] * 3


def test_the_sni_name_and_a_proxy_header_before_the_hello(tls_lab, pems):
    tls_lab.start_balancer(*tls_flags(pems), "--accept-proxy")
    events = tls_lab.events()
    [(status, seen)] = https_request(
        tls_lab.listen, pems.client_context(), [GET], "api.lab.test", ("198.51.100.7", 4000)
    )
    assert status == 200
    assert seen["headers"]["x-forwarded-for"] == ["198.51.100.7"]
    route = events.wait("route", path="/who")
    assert route["client"] == "198.51.100.7"
    assert route["tls"]["sni"] == "api.lab.test"


def test_plain_http_to_the_tls_port_gets_a_400_that_says_so(tls_lab, pems):
    tls_lab.start_balancer(*tls_flags(pems))
    events = tls_lab.events()
    reply = raw_exchange(tls_lab.listen, GET)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"plain HTTP sent to the HTTPS port" in reply
    error = events.wait("error", status=400)
    assert "https://" in error["reason"]
    assert problems(error) == []
    [(status, _)] = https_request(tls_lab.listen, pems.client_context(), [GET])
    assert status == 200  # and the balancer carries on


def closed_unanswered(address: str, data: bytes) -> bool:
    try:
        return raw_exchange(address, data) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_garbage_is_closed_with_a_reason(tls_lab, pems):
    tls_lab.start_balancer(*tls_flags(pems))
    events = tls_lab.events()
    assert closed_unanswered(tls_lab.listen, b"\x00\x01garbage\r\n")
    assert "not TLS" in events.wait("error")["reason"]


def test_a_truncated_hello_then_close_is_a_failed_handshake(tls_lab, pems):
    tls_lab.start_balancer(*tls_flags(pems))
    events = tls_lab.events()
    hello = client_hello()
    assert closed_unanswered(tls_lab.listen, hello[: len(hello) // 2])
    assert "TLS handshake failed" in events.wait("error")["reason"]
    bad_record = b"\x16\x03\x01\x00\x05hello"  # a handshake record holding no ClientHello
    assert closed_unanswered(tls_lab.listen, bad_record)
    reasons = wait_for(lambda: len(events.of("error")) >= 2 and events.of("error"))
    assert "TLS handshake failed" in reasons[1]["reason"]


def client_hello() -> bytes:
    """A real ClientHello, as Python's ssl writes it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="x.test")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("sent", ["nothing", "half a hello"])
def test_a_handshake_that_never_finishes_times_out(tls_lab, pems, sent):
    tls_lab.start_balancer(*tls_flags(pems))
    tls_lab.configure(timeouts={"client_header_ms": 300})
    events = tls_lab.events()
    with socket.create_connection(split(tls_lab.listen), timeout=10) as sock:
        if sent != "nothing":
            hello = client_hello()
            sock.sendall(hello[: len(hello) // 2])
        assert sock.recv(100) == b""  # closed by the balancer, not by us
    reason = events.wait("error")["reason"]
    assert "300 ms (timeouts.client_header_ms)" in reason


def test_switching_tls_on_and_off_live_lets_requests_in_flight_finish(tls_lab, pems):
    tls_lab.start_balancer()
    results: dict[str, int] = {}

    def plain_slow():
        client = Http(tls_lab.listen)
        try:
            results["plain"] = client.get("/slow?ms=800")[0]
        finally:
            client.close()

    thread = threading.Thread(target=plain_slow)
    thread.start()
    wait_for(lambda: tls_lab.state()["backends"][0]["active"] == 1, what="the slow request")
    tls_lab.configure(tls=tls_settings(pems))
    [(status, _)] = https_request(tls_lab.listen, pems.client_context(), [GET])
    assert status == 200  # a new connection is TLS at once
    thread.join(10)
    assert results["plain"] == 200  # the plain one in flight finished

    def tls_slow():
        slow = b"GET /slow?ms=800 HTTP/1.1\r\nHost: shop.lab.test\r\n\r\n"
        results["tls"] = https_request(tls_lab.listen, pems.client_context(), [slow])[0][0]

    thread = threading.Thread(target=tls_slow)
    thread.start()
    wait_for(lambda: tls_lab.state()["backends"][0]["active"] == 1, what="the slow request")
    tls_lab.configure(tls={"mode": "off"})
    client = Http(tls_lab.listen)
    try:
        assert client.get("/")[0] == 200  # plain again for new connections
    finally:
        client.close()
    thread.join(10)
    assert results["tls"] == 200


def test_a_key_that_does_not_match_is_refused_live_and_the_balancer_keeps_running(
    tls_lab, pems, tmp_path
):
    other = make_pems(tmp_path, "other")
    tls_lab.start_balancer(*tls_flags(pems))
    status, answer = tls_lab.admin(
        "PUT", "/config", {"tls": tls_settings(pems, key=str(other.key))}
    )
    assert status == 400
    assert answer["field"] == "tls.key"
    assert "the key does not match the certificate" in answer["error"]
    status, answer = tls_lab.admin(
        "PUT", "/config", {"tls": tls_settings(pems, certificate=str(tmp_path / "gone.pem"))}
    )
    assert (status, answer["field"]) == (400, "tls.certificate")
    [(status, _)] = https_request(tls_lab.listen, pems.client_context(), [GET])
    assert status == 200  # the old certificate still serves


def run_balancer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab", "balancer", "--listen", "127.0.0.1:0",
         "--admin", "127.0.0.1:0", *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_a_key_that_does_not_match_stops_the_start_from_flags_and_toml(pems, tmp_path):
    other = make_pems(tmp_path, "other")
    flags = ["--tls", "terminate", "--tls-cert", str(pems.certificate), "--tls-key"]
    done = run_balancer(*flags, str(other.key))
    assert done.returncode == 2
    assert "tls.key: the key does not match the certificate" in done.stderr
    toml = tmp_path / "lb.toml"
    toml.write_text(
        'listen = "127.0.0.1:0"\nadmin = "127.0.0.1:0"\n[tls]\nmode = "terminate"\n'
        f'certificate = "{pems.certificate}"\nkey = "{other.key}"\n'
    )
    done = run_balancer("--config", str(toml))
    assert done.returncode == 2
    assert "tls.key: the key does not match the certificate" in done.stderr


@pytest.fixture
def tls_echo(pems):
    backend = EchoBackend(server_context(pems))
    yield backend
    backend.stop()


def server_context(pems) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pems.certificate, pems.key)
    return context


def test_re_encryption_to_a_tls_backend_verifies_it_and_pools_it(tls_lab, pems, tls_echo):
    tls_lab.backends = {"t1": tls_echo.address}
    tls_lab.start_balancer(*tls_flags(pems), "--tls-upstream", "--tls-upstream-ca", str(pems.ca))
    answers = https_request(tls_lab.listen, pems.client_context(), [GET, GET])
    assert [status for status, _ in answers] == [200, 200]
    assert all(seen["tls"] for _, seen in answers)  # encrypted again to the backend
    assert answers[0][1]["connection"] == answers[1][1]["connection"]  # pooled


def test_a_backend_whose_certificate_fails_verification_is_a_failed_connection(
    tls_lab, pems, tmp_path
):
    stranger = make_pems(tmp_path, "stranger")  # signed by a CA the balancer does not trust
    backend = EchoBackend(server_context(stranger))
    try:
        tls_lab.backends = {"t1": backend.address}
        tls_lab.start_balancer(
            *tls_flags(pems), "--tls-upstream", "--tls-upstream-ca", str(pems.ca)
        )
        events = tls_lab.events()
        [(status, _)] = https_request(tls_lab.listen, pems.client_context(), [GET])
        assert status in (502, 503)  # 503 once passive health has taken t1 out
        error = events.wait("error")
        assert (
            "t1 failed the TLS handshake (tls.upstream): certificate verify failed"
            in (error["reason"])
        ), error
    finally:
        backend.stop()


def test_health_checks_speak_tls_to_tls_backends(tls_lab, pems, tls_echo, tmp_path):
    stranger = make_pems(tmp_path, "stranger")
    untrusted = EchoBackend(server_context(stranger))
    try:
        tls_lab.backends = {"t1": tls_echo.address, "t2": untrusted.address}
        tls_lab.start_balancer(
            *tls_flags(pems), "--tls-upstream", "--tls-upstream-ca", str(pems.ca)
        )
        events = tls_lab.events()
        tls_lab.configure(health={"enabled": True, "interval_ms": 100, "rise": 1, "fall": 1})
        assert events.wait("check", backend="t1")["ok"] is True  # a real TLS check passes
        failed = events.wait("check", backend="t2")
        assert failed["ok"] is False
        assert failed["detail"].startswith("TLS: certificate verify failed")
    finally:
        untrusted.stop()


def test_a_resumed_session_is_reported(tls_lab, pems):
    tls_lab.start_balancer(*tls_flags(pems))
    events = tls_lab.events()
    context = pems.client_context()
    host, port = split(tls_lab.listen)
    session = None
    for _ in range(2):
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="shop.lab.test", session=session) as sock,
        ):
            sock.sendall(GET)
            sock.recv(65536)  # TLS 1.3 tickets come after the handshake, with the answer
            session = sock.session
    routes = wait_for(lambda: len(events.of("route")) >= 2 and events.of("route"))
    assert [route["tls"]["resumed"] for route in routes] == [False, True]
