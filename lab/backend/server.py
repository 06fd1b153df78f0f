"""Run one toy backend: bind, say where, serve until told to stop."""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import ssl

from lab.address import join_address
from lab.backend.app import ToyBackend
from lab.backend.connection import HttpConnection
from lab.backend.datagrams import DatagramService
from lab.backend.knobs import Knobs
from lab.backend.tls import server_context
from lab.lifecycle import report_ready, run_daemon

PORT_TRIES = 5  # picks of a free port (port 0) before giving up on a UDP twin


def knobs_from(options: argparse.Namespace) -> Knobs:
    """The starting knobs, from flags that argparse has already validated."""
    return Knobs(
        latency_ms=options.latency_ms,
        jitter_ms=options.jitter_ms,
        error_rate=options.error_rate,
        max_concurrency=options.max_concurrency,
    )


async def serve(options: argparse.Namespace, stop: asyncio.Event) -> None:
    """Serve until `stop` is set."""
    backend = ToyBackend(options.name, knobs_from(options), rng=random.Random(options.seed))
    loop = asyncio.get_running_loop()
    server, datagrams = await bind(loop, backend, options)
    host, port = server.sockets[0].getsockname()[:2]
    backend.listen = join_address(host, port)
    udp = join_address(*datagrams.get_extra_info("sockname")[:2])
    tls_server = None
    if options.tls_port is not None:
        context = options.tls_context
        try:
            tls_server = await _tls_listener(backend, options, context)
        except OSError:
            server.close()
            datagrams.close()
            raise
    gc.freeze()  # start-up objects never die; keep the collector from rescanning them
    human = f"backend {backend.name} listening on http://{backend.listen} and udp://{udp}"
    ready = {"listen": backend.listen, "udp": udp}
    if tls_server is not None:
        human += f" and https://{backend.tls.listen}"
        ready["tls"] = backend.tls.listen
    report_ready(human, **ready)
    try:
        await stop.wait()
    finally:
        server.close()
        datagrams.close()
        if tls_server is not None:
            tls_server.close()


async def _tls_listener(
    backend: ToyBackend, options: argparse.Namespace, context: ssl.SSLContext
) -> asyncio.Server:
    """The same app on a second port, behind TLS (lab.backend.tls)."""
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: HttpConnection(backend, options.proxy_protocol, tls=True),
            options.host,
            options.tls_port,
            ssl=context,
            backlog=1024,
        )
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot bind TLS port {options.tls_port}: {exc.strerror}"
        ) from None
    backend.tls.listen = join_address(*server.sockets[0].getsockname()[:2])
    return server


async def bind(
    loop: asyncio.AbstractEventLoop, backend: ToyBackend, options: argparse.Namespace
) -> tuple[asyncio.Server, asyncio.DatagramTransport]:
    """The TCP listener and, by default on the same port number, the UDP one.

    With port 0 the kernel picks a TCP port whose UDP twin may already be taken (by
    any process's UDP socket): then try another port, rather than fail to start.
    """
    tries = PORT_TRIES if options.port == 0 and options.udp_port is None else 1
    for attempt in range(1, tries + 1):
        server = await loop.create_server(
            lambda: HttpConnection(backend, options.proxy_protocol),
            options.host,
            options.port,
            backlog=1024,
        )
        port = server.sockets[0].getsockname()[1]
        # UDP on the same port number by default, so one backend address serves every mode.
        udp_port = port if options.udp_port is None else options.udp_port
        try:
            datagrams, _ = await loop.create_datagram_endpoint(
                lambda: DatagramService(backend), local_addr=(options.host, udp_port)
            )
        except OSError as exc:
            server.close()
            if attempt < tries:
                continue
            raise OSError(exc.errno, f"cannot bind UDP port {udp_port}: {exc.strerror}") from None
        return server, datagrams
    raise AssertionError("unreachable")


def run(options: argparse.Namespace) -> int:
    options.tls_context = None
    if options.tls_port is not None:  # a bad certificate stops us before anything binds
        options.tls_context = server_context(options.tls_cert, options.tls_key)
    return run_daemon(lambda stop: serve(options, stop))
