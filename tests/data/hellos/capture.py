"""Capture real ClientHellos into hex files, for tests/test_client_hello.py.

Run once (from the worktree root: `.venv/bin/python tests/data/hellos/capture.py`).
A relay on 127.0.0.1 records the client's first TLS record(s), up to the end of the
ClientHello, then passes everything on to a real TLS server (a trustme certificate for
shop.lab.test, api.lab.test and localhost), so each handshake completes and a session
can be resumed. Nothing leaves loopback. The notes in README.md say which client sent
which file.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import trustme

HERE = Path(__file__).parent
CA = trustme.CA()
LEAF = CA.issue_cert("shop.lab.test", "api.lab.test", "localhost", "127.0.0.1")


def hello_bytes(sock: socket.socket) -> bytes:
    """Read records until the handshake message they carry is complete."""
    data = b""
    while True:
        records, offset, body = data, 0, b""
        while offset + 5 <= len(records):
            size = int.from_bytes(records[offset + 3 : offset + 5], "big")
            body += records[offset + 5 : offset + 5 + size]
            offset += 5 + size
        if len(body) >= 4 and len(body) >= 4 + int.from_bytes(body[1:4], "big"):
            return data[:offset]
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


class Relay:
    """Accepts one client at a time, records its hello, and relays it to a TLS server."""

    def __init__(self) -> None:
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        LEAF.configure_cert(self.server_context)
        self.server_context.set_alpn_protocols(["h2", "http/1.1"])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.hellos: list[bytes] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client: socket.socket) -> None:
        hello = hello_bytes(client)
        self.hellos.append(hello)
        inner, outer = socket.socketpair()
        outer.sendall(hello)
        threading.Thread(target=self.tls_server, args=(inner,), daemon=True).start()
        pipe(client, outer)

    def tls_server(self, sock: socket.socket) -> None:
        try:
            with self.server_context.wrap_socket(sock, server_side=True) as tls:
                tls.recv(65536)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except (OSError, ssl.SSLError):
            pass


def pipe(a: socket.socket, b: socket.socket) -> None:
    def one_way(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    threading.Thread(target=one_way, args=(b, a), daemon=True).start()
    one_way(a, b)


def python_client(port: int, sni: str | None, session=None, alpn=None):
    context = ssl.create_default_context()
    CA.configure_trust(context)
    if sni is None:
        context.check_hostname = False
    if alpn:
        context.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port))
    with context.wrap_socket(raw, server_hostname=sni, session=session) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        while tls.recv(65536):
            pass
        return tls.session


def python_resumed(port: int) -> None:
    """TLS 1.2 only, so the ticket arrives in the handshake; then offer it again."""
    context = ssl.create_default_context()
    CA.configure_trust(context)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    sessions = []
    for _ in range(2):
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            context.wrap_socket(
                raw, server_hostname="shop.lab.test", session=sessions[-1] if sessions else None
            ) as tls,
        ):
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            while tls.recv(65536):
                pass
            sessions.append(tls.session)


def python_resumed_13(port: int) -> None:
    """TLS 1.3: the ticket comes after the handshake; the second hello carries a PSK."""
    context = ssl.create_default_context()
    CA.configure_trust(context)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    session = None
    for _ in range(2):
        raw = socket.create_connection(("127.0.0.1", port))
        with context.wrap_socket(raw, server_hostname="api.lab.test", session=session) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            while tls.recv(65536):
                pass
            session = tls.session


def main() -> None:
    relay = Relay()
    port = relay.port
    with tempfile.TemporaryDirectory() as tmp:
        ca_file = Path(tmp, "ca.pem")
        CA.cert_pem.write_to_path(str(ca_file))
        runs = {
            "python-sni": lambda: python_client(port, "shop.lab.test"),
            "python-no-sni": lambda: python_client(port, None),
            "python-tls12-resumed": lambda: python_resumed(port),
            "python-tls13-resumed": lambda: python_resumed_13(port),
            "curl-alpn": lambda: subprocess.run(
                [
                    "curl",
                    "-s",
                    "--http2",
                    "--cacert",
                    str(ca_file),
                    "--resolve",
                    f"api.lab.test:{port}:127.0.0.1",
                    f"https://api.lab.test:{port}/",
                ],
                check=False,
                capture_output=True,
                timeout=20,
            ),  # fmt: skip
            "openssl-many-extensions": lambda: subprocess.run(
                [
                    "openssl",
                    "s_client",
                    "-connect",
                    f"127.0.0.1:{port}",
                    "-servername",
                    "shop.lab.test",
                    "-alpn",
                    "h2,http/1.1",
                    "-status",
                    "-CAfile",
                    str(ca_file),
                    "-curves",
                    "X25519:P-256:P-384",
                    "-sigalgs",
                    "ECDSA+SHA256:RSA-PSS+SHA256:RSA+SHA256",
                    "-tls1_3",
                    "-no_ign_eof",
                ],
                input=b"",
                check=False,
                capture_output=True,
                timeout=20,
            ),  # fmt: skip
            "chromium": lambda: subprocess.run(
                [
                    "chromium",
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    f"--host-resolver-rules=MAP shop.lab.test 127.0.0.1:{port}",
                    "--ignore-certificate-errors",
                    f"--user-data-dir={tmp}/chromium",
                    "--dump-dom",
                    f"https://shop.lab.test:{port}/",
                ],
                check=False,
                capture_output=True,
                timeout=60,
            ),  # fmt: skip
        }
        wanted = sys.argv[1:] or list(runs)
        for name in wanted:
            before = len(relay.hellos)
            runs[name]()
            for i, hello in enumerate(relay.hellos[before:]):
                suffix = "" if i == 0 else f"-{i + 1}"
                path = HERE / f"{name}{suffix}.hex"
                path.write_text(hello.hex() + "\n")
                print(f"{path.name}: {len(hello)} bytes")
    relay.listener.close()


if __name__ == "__main__":
    main()
