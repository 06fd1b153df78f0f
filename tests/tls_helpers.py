"""Certificates from a test CA (trustme) and a small echo backend, plain or TLS, for the
balancer's HTTPS tests. (The toy backends learn TLS in another branch; these stand in.)

The echo backend answers every request with JSON: the request line, the headers it
got, whether its connection was TLS, and a number per connection (so a test can see
a pooled upstream connection carry a second request). `GET /slow?ms=N` answers after
N milliseconds, to keep a request in flight.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import trustme

from lab.balancer.config import BalancerConfig
from lab.proxy_protocol import encode_v1

NAMES = ("shop.lab.test", "api.lab.test", "localhost", "127.0.0.1")


@dataclass
class Pems:
    """A CA's file and a leaf certificate's chain and key files it signed."""

    ca: Path
    certificate: Path
    key: Path
    authority: trustme.CA

    def client_context(self) -> ssl.SSLContext:
        """A client that verifies the chain against this CA, as curl --cacert does."""
        context = ssl.create_default_context(cafile=str(self.ca))
        return context


def make_pems(folder: Path, label: str = "lab") -> Pems:
    authority = trustme.CA(organization_name=f"{label} test CA")
    leaf = authority.issue_cert(*NAMES)
    ca = folder / f"{label}-ca.pem"
    certificate = folder / f"{label}-cert.pem"
    key = folder / f"{label}-key.pem"
    authority.cert_pem.write_to_path(str(ca))
    leaf.private_key_pem.write_to_path(str(key))
    certificate.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return Pems(ca, certificate, key, authority)


class EchoBackend:
    """An HTTP/1.1 backend on a thread of its own that answers with what it received."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context
        self.loop = asyncio.new_event_loop()
        self.address = ""
        self.connections = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        )
        host, port = server.sockets[0].getsockname()[:2]
        self.address = f"{host}:{port}"
        self.server = server
        ready.set()
        self.loop.run_forever()
        server.close()
        self.loop.run_until_complete(server.wait_closed())
        self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *lines = head.decode("latin-1").split("\r\n")
                headers: dict[str, list[str]] = {}
                for text in lines:
                    if text:
                        name, _, value = text.partition(":")
                        headers.setdefault(name.strip().lower(), []).append(value.strip())
                length = int(headers.get("content-length", ["0"])[0])
                if length:
                    await reader.readexactly(length)
                method, target, _ = line.split(" ")
                if target.startswith("/slow"):
                    await asyncio.sleep(int(target.partition("ms=")[2] or 500) / 1000)
                body = json.dumps(
                    {
                        "line": line,
                        "headers": headers,
                        "tls": writer.get_extra_info("ssl_object") is not None,
                        "connection": number,
                    }
                ).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def https_request(
    address: str,
    context: ssl.SSLContext,
    requests: list[bytes],
    server_name: str = "shop.lab.test",
    proxy_from: tuple[str, int] | None = None,
    timeout: float = 10.0,
) -> list[tuple[int, dict]]:
    """Send each request on one TLS connection; the (status, JSON body) of each answer."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as raw:
        if proxy_from is not None:
            raw.sendall(encode_v1(proxy_from, (host, int(port))))
        with context.wrap_socket(raw, server_hostname=server_name) as sock:
            file = sock.makefile("rb")
            answers = []
            for request in requests:
                sock.sendall(request)
                answers.append(read_response(file))
            return answers


def read_response(file) -> tuple[int, dict]:
    status_line = file.readline()
    length = 0
    while (line := file.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = file.read(length)
    status = int(status_line.split()[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"text": body.decode("latin-1")}


def tls_settings(pems: Pems, **more) -> dict:
    return {
        "mode": "terminate",
        "certificate": str(pems.certificate),
        "key": str(pems.key),
        **more,
    }


def config_with(**data) -> BalancerConfig:
    from lab.balancer.config import from_dict

    return from_dict(data)
