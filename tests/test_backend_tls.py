"""A toy backend's TLS listener: the same answers behind TLS, checked by real ssl clients."""

from __future__ import annotations

import functools
import http.client
import json
import socket
import ssl
import subprocess
from dataclasses import dataclass

import pytest
from conftest import Http, split

from lab.certificates import make_certificates
from lab.supervisor import Supervisor, lab_command


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def b1(certificates):
    """Backend b1 with a TLS listener on a free port: (plain address, TLS address)."""
    with Supervisor() as supervisor:
        flags = ["--tls-port", "0", "--tls-cert", str(certificates.certificate)]
        flags += ["--tls-key", str(certificates.key)]
        child = supervisor.start("b1", ["backend", "--name", "b1", "--port", "0", *flags])
        yield child.addresses["listen"], child.addresses["tls"]


@functools.cache
def client_context(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


@dataclass
class Answer:
    status: int
    body: dict
    version: str | None
    session: ssl.SSLSession | None
    reused: bool


def https_get(certificates, address: str, name: str, path: str = "/", session=None) -> Answer:
    """GET over a fresh TLS connection verified against the lab CA."""
    context = client_context(str(certificates.ca))  # one per CA: a session is the context's
    with socket.create_connection(split(address), timeout=5) as raw:
        tls = context.wrap_socket(raw, server_hostname=name, session=session)
        conn = http.client.HTTPConnection(name)  # talks over our own socket
        conn.sock = tls
        conn.request("GET", path, headers={"Host": name})
        response = conn.getresponse()
        body = json.loads(response.read())
        answer = Answer(response.status, body, tls.version(), tls.session, tls.session_reused)
        tls.close()
        return answer


def backend_state(address: str) -> dict:
    return Http(address).json("GET", "/_lab/state")[1]


def test_the_tls_port_answers_with_the_name_the_client_asked_for(certificates, b1):
    plain, secure = b1
    for name in ("shop.lab.test", "api.lab.test"):
        answer = https_get(certificates, secure, name, "/cart?x=1")
        body = answer.body
        assert (answer.status, body["backend"], body["path"]) == (200, "b1", "/cart?x=1")
        assert body["tls"] == {"sni": name, "version": answer.version, "resumed": False}


def test_a_client_by_ip_address_sends_no_sni_and_the_backend_says_so(certificates, b1):
    _, secure = b1
    answer = https_get(certificates, secure, "127.0.0.1")
    assert answer.status == 200 and answer.body["tls"]["sni"] is None


def test_the_plain_port_stays_plain(b1):
    plain, _ = b1
    status, _, body = Http(plain).get("/")
    assert status == 200 and "tls" not in json.loads(body)


def test_state_counts_handshakes_by_name_and_resumed_sessions(certificates, b1):
    plain, secure = b1
    Http(plain).json("POST", "/_lab/reset")
    first = https_get(certificates, secure, "shop.lab.test")
    second = https_get(certificates, secure, "shop.lab.test", session=first.session)
    assert (first.body["tls"]["resumed"], second.body["tls"]["resumed"]) == (False, True)
    assert (first.reused, second.reused) == (False, True)
    state = backend_state(plain)["tls"]
    assert state == {
        "listen": secure,
        "handshakes": 2,
        "resumed": 1,
        "sni": {"shop.lab.test": 2},
    }


def test_a_client_that_does_not_trust_the_lab_ca_is_refused(b1):
    _, secure = b1
    with (
        socket.create_connection(split(secure), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="shop.lab.test")


def test_plain_http_to_the_tls_port_gets_no_answer_and_the_backend_keeps_serving(certificates, b1):
    _, secure = b1
    with socket.create_connection(split(secure), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not raw.recv(100).startswith(b"HTTP/1.1 200")
    assert https_get(certificates, secure, "api.lab.test").status == 200


def test_without_tls_flags_state_says_tls_null():
    with Supervisor() as supervisor:
        child = supervisor.start("b2", ["backend", "--name", "b2", "--port", "0"])
        assert "tls" not in child.addresses
        assert backend_state(child.addresses["listen"])["tls"] is None


def _refused(*flags: str) -> str:
    result = subprocess.run(
        lab_command("backend", "--name", "b1", "--port", "0", *flags),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1
    return result.stderr


def test_bad_tls_flags_exit_2_with_one_line_naming_the_problem(certificates, tmp_path):
    cert, key = str(certificates.certificate), str(certificates.key)
    assert "needs both --tls-cert" in _refused("--tls-port", "0", "--tls-cert", cert)
    assert "--tls-key needs --tls-port" in _refused("--tls-key", key)
    missing = str(tmp_path / "missing.pem")
    assert f"cannot read {missing}" in _refused(
        "--tls-port", "0", "--tls-cert", missing, "--tls-key", key
    )
    other = make_certificates(tmp_path / "other")
    assert f"{other.key} is not the private key of {cert}" in _refused(
        "--tls-port", "0", "--tls-cert", cert, "--tls-key", str(other.key)
    )
