"""TLS test backends for the passthrough tests: small asyncio servers with trustme certificates.

Each answers every HTTP request on its connection with its own name, and records the
server name (SNI) each handshake asked for: proof that the ClientHello reached it as
the client sent it. The CA exists only in memory, for the test that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from functools import partial

import trustme

NAMES = ("shop.lab.test", "api.lab.test", "localhost", "127.0.0.1")


class TlsBackends:
    def __init__(self, names: list[str]) -> None:
        self.ca = trustme.CA()
        self.leaf = self.ca.issue_cert(*NAMES)
        self.addresses: dict[str, str] = {}
        self.seen_sni: dict[str, list[str | None]] = {name: [] for name in names}
        self.servers: list[asyncio.Server] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        for name in names:
            asyncio.run_coroutine_threadsafe(self._start(name), self.loop).result(10)

    async def _start(self, name: str) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf.configure_cert(context)
        context.sni_callback = lambda _obj, server_name, _ctx: self.seen_sni[name].append(
            server_name
        )
        server = await asyncio.start_server(partial(self._serve, name), "127.0.0.1", 0, ssl=context)
        self.servers.append(server)
        self.addresses[name] = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def _serve(self, name: str, reader, writer) -> None:
        body = name.encode()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        writer.close()

    def client_context(self, check_hostname: bool = True) -> ssl.SSLContext:
        """A client that trusts only this test's CA, and checks the chain always."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        context.check_hostname = check_hostname
        return context

    def get(self, address: str, sni: str | None, before: bytes = b"") -> tuple[str, str]:
        """One HTTPS request through `address`; returns (backend name, TLS version)."""
        host, _, port = address.rpartition(":")
        context = self.client_context(check_hostname=sni in NAMES)
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            if before:
                raw.sendall(before)  # a PROXY header, say
            with context.wrap_socket(raw, server_hostname=sni) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
                answer = b""
                while not answer.endswith(b"\r\n\r\n") or b"Content-Length" not in answer:
                    answer += tls.recv(1)
                size = int(answer.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                body = b""
                while len(body) < size:
                    body += tls.recv(size - len(body))
                return body.decode(), str(tls.version())

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
                await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
