"""The lab CA: real TLS handshakes verified against it, private keys kept private."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lab.certificates import NAMES, OWNER, make_certificates, sweep_abandoned


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _serve_once(certificate: Path, key: Path) -> tuple[socket.socket, threading.Thread]:
    """A TLS server on loopback that completes one handshake and answers b'hello'."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                pass  # the client refused our certificate: that is its test

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def _handshake(certificates, name: str) -> bytes:
    listener, thread = _serve_once(certificates.certificate, certificates.key)
    try:
        client = ssl.create_default_context(cafile=certificates.ca)
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname=name) as tls,
        ):
            return tls.recv(5)
    finally:
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("name", NAMES)
def test_a_client_verifying_against_the_lab_ca_accepts_every_lab_name(certificates, name):
    assert _handshake(certificates, name) == b"hello"


def test_a_name_the_certificate_does_not_carry_is_refused(certificates):
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(certificates, "other.lab.test")


def test_a_client_without_the_lab_ca_refuses_the_certificate(certificates):
    listener, thread = _serve_once(certificates.certificate, certificates.key)
    try:
        refused = pytest.raises(ssl.SSLCertVerificationError, match="self.signed|unable to get")
        with socket.create_connection(listener.getsockname(), timeout=5) as raw, refused:
            ssl.create_default_context().wrap_socket(raw, server_hostname="shop.lab.test")
    finally:
        thread.join(5)
        listener.close()


def test_private_keys_are_readable_by_their_owner_only(certificates):
    for path in (certificates.key, certificates.combined):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(certificates.ca.stat().st_mode) == 0o644


def test_the_combined_file_serves_alone_as_haproxys_crt_does(certificates):
    """HAProxy's `crt` takes the chain and the key in one file; a server can load it alone."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.combined)
    assert b"PRIVATE KEY" in certificates.combined.read_bytes()
    assert b"PRIVATE KEY" not in certificates.certificate.read_bytes()


def test_each_run_makes_its_own_ca(tmp_path):
    first = make_certificates(tmp_path / "one").ca.read_bytes()
    second = make_certificates(tmp_path / "two").ca.read_bytes()
    assert first.startswith(b"-----BEGIN CERTIFICATE-----") and first != second


def test_the_runtime_folder_is_private_and_gone_when_the_process_exits():
    script = (
        "from lab.certificates import runtime_certificates\n"
        "import os, stat\n"
        "files = runtime_certificates()\n"
        "print(files.folder, oct(stat.S_IMODE(os.stat(files.folder).st_mode)), "
        "files.ca.exists())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    folder, mode, existed = Path(out[0]), out[1], out[2]
    assert (mode, existed) == ("0o700", "True")
    assert not folder.exists()


def test_a_folder_left_by_a_killed_lab_is_swept_and_a_living_one_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    left = tmp_path / "lb-lab-tls-left"
    left.mkdir()
    (left / OWNER).write_text(dead)  # its lab was SIGKILLed: no atexit ran
    (left / "key.pem").write_text("a private key")
    living = tmp_path / "lb-lab-tls-living"
    living.mkdir()
    (living / OWNER).write_text(str(os.getpid()))
    unowned = tmp_path / "lb-lab-tls-unowned"  # names no owner: not ours to judge
    unowned.mkdir()
    assert sweep_abandoned(tmp_path, "lb-lab-tls-") == [left]
    assert not left.exists() and living.exists() and unowned.exists()
