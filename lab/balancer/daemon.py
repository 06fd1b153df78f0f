"""Wire the balancer together: the traffic listener (http or tcp) and the admin listener."""

from __future__ import annotations

import asyncio
import contextlib

from lab.balancer import compiled
from lab.balancer.admin import AdminConnection
from lab.balancer.balancer import Balancer
from lab.balancer.config import BalancerConfig, format_address
from lab.balancer.http_proxy import HttpClientConnection
from lab.balancer.tcp_proxy import TcpClientConnection
from lab.lifecycle import report_ready

BACKLOG = 1024
# Housekeeping: response times fade, passive ejections end, slow start ramps,
# queued requests time out. Often enough for a learner to see it happen on time.
TICK_S = 0.25
PROTOCOLS = {"http": HttpClientConnection, "tcp": TcpClientConnection}


class Daemon:
    def __init__(self, config: BalancerConfig) -> None:
        self.balancer = Balancer(config)
        self.listener: asyncio.Server | None = None
        self.admin: asyncio.Server | None = None

    def accept(self) -> asyncio.Protocol:
        # The mode is read per connection, so a live switch needs no new listener:
        # new connections get the new layer, open ones finish in the layer they began in.
        return PROTOCOLS[self.balancer.config.mode](self.balancer)

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
        balancer.listen_address = format_address(self.listener.sockets[0].getsockname()[:2])
        balancer.admin_address = format_address(self.admin.sockets[0].getsockname()[:2])

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        config = self.balancer.config
        layer = "Layer 7, HTTP" if config.mode == "http" else "Layer 4, TCP"
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
        self.balancer.health.stop()
        self.listener.close()
        self.admin.close()
