"""Wire the balancer together: the traffic listeners (TCP, and UDP on the same port) and
the admin listener."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from lab.balancer import compiled
from lab.balancer.admin import AdminConnection
from lab.balancer.balancer import Balancer
from lab.balancer.config import BalancerConfig, format_address
from lab.balancer.http_proxy import HttpClientConnection
from lab.balancer.tcp_proxy import TcpClientConnection
from lab.balancer.tls_termination import TlsSniffer
from lab.balancer.udp_proxy import UdpProxy
from lab.lifecycle import report_ready

BACKLOG = 1024
# Housekeeping: response times fade, passive ejections end, slow start ramps,
# queued requests time out. Often enough for a learner to see it happen on time.
TICK_S = 0.25
# Bytes of datagrams the kernel may hold for the UDP listener (capped by net.core.rmem_max).
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
LAYERS = {"http": "Layer 7, HTTP", "tcp": "Layer 4, TCP", "udp": "Layer 4, UDP"}


class NotAtThisLayer(asyncio.Protocol):
    """A TCP connection while the balancer is in mode udp: closed at once, unrouted."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.balancer.errors["not_udp"] += 1
        transport.close()


def udp_socket(host: str, port: int) -> socket.socket:
    """The datagram listener, with a deep receive buffer: a burst of datagrams (a flood of
    new flows) waits there for the event loop instead of being dropped by the kernel."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


PROTOCOLS = {"http": HttpClientConnection, "tcp": TcpClientConnection, "udp": NotAtThisLayer}


class Daemon:
    def __init__(self, config: BalancerConfig) -> None:
        self.balancer = Balancer(config)
        self.listener: asyncio.Server | None = None
        self.admin: asyncio.Server | None = None
        self.udp: UdpProxy | None = None
        self.udp_transport: asyncio.BaseTransport | None = None

    def accept(self) -> asyncio.Protocol:
        # The mode is read per connection, so a live switch needs no new listener:
        # new connections get the new layer, open ones finish in the layer they began in.
        balancer = self.balancer
        if balancer.tls_context is not None:  # tls.mode terminate (so mode http)
            return TlsSniffer(balancer, balancer.tls_context)
        return PROTOCOLS[balancer.config.mode](balancer)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        balancer = self.balancer
        balancer.events.loop = loop
        balancer.health.start(loop)
        self.listener = await loop.create_server(
            self.accept, *balancer.config.listen, backlog=BACKLOG
        )
        self.admin = await loop.create_server(
            lambda: AdminConnection(balancer), *balancer.config.admin, backlog=128
        )
        host, port = self.listener.sockets[0].getsockname()[:2]
        # Datagrams arrive on the same port number, so a live switch to mode udp needs
        # no new address (TCP and UDP ports are separate: both are ours).
        udp = UdpProxy(balancer)
        try:
            self.udp_transport, _ = await loop.create_datagram_endpoint(
                lambda: udp, sock=udp_socket(host, port)
            )
        except OSError as exc:
            if balancer.config.mode == "udp":
                raise
            # Not needed yet: run without it, and refuse a switch to mode udp with this.
            balancer.udp_unavailable = f"UDP port {port} could not be bound ({exc.strerror})"
        else:
            self.udp = udp
            balancer.end_flows = udp.end_all
        balancer.listen_address = format_address((host, port))
        balancer.admin_address = format_address(self.admin.sockets[0].getsockname()[:2])

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        config = self.balancer.config
        layer = LAYERS[config.mode]
        report_ready(
            f"lb-lab balancer ({layer}, {config.algorithm}; {compiled.describe()}) "
            f"listening on {self.balancer.listen_address}, "
            f"admin API on http://{self.balancer.admin_address}/state",
            listen=self.balancer.listen_address,
            admin=self.balancer.admin_address,
        )
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
            self.balancer.tick()
            if self.udp is not None:
                self.udp.tick()
        self.balancer.health.stop()
        if self.udp is not None:
            self.udp.end_all()
        if self.udp_transport is not None:
            self.udp_transport.close()
        self.listener.close()
        self.admin.close()
