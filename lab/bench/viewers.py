"""Simulated viewers: python-socketio clients that watch the lab as a browser would.

Each connects to the page's address (through the lab's own balancer, when
several web processes serve it), keeps its cookies as a browser does (the
balancer's sticky cookie says which web process it is on), and records every
`batch`: when it arrived against the time of the newest event in it, which the
balancer stamped. That difference is the batch's delivery delay: relay,
queue, web process and transport, up to the viewer (plus up to one 50 ms
batching period, since the newest event may wait that long for its batch).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

STICKY_COOKIE = "LB_LAB_WEB"  # lab.web.scaleout.COOKIE, read here without importing eventlet
CONNECT_TIMEOUT_S = 30.0


def newest_event_time(batch: dict) -> float | None:
    times = [e["t"] for e in batch.get("events", ()) if isinstance(e.get("t"), int | float)]
    return max(times) if times else None


class Viewer:
    """One simulated browser. `order` keeps each batch whole (tests); else only its delay."""

    def __init__(
        self,
        url: str,
        transports: list[str] | None = None,
        cookies: dict[str, str] | None = None,
        order: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.transports = transports
        self.cookies = cookies or {}
        self.order = order
        self.clock = clock
        self.batches: list[str] = []  # each batch as canonical JSON, in arrival order
        self.delays: list[float] = []  # seconds, one per batch that carried events
        self.count = 0  # batches received
        self.states: list[dict] = []
        self.connects = 0
        self.disconnects = 0
        self.sio: Any = None
        self.http: Any = None

    async def connect(self, timeout: float = CONNECT_TIMEOUT_S) -> Viewer:
        import aiohttp
        import socketio
        from yarl import URL

        # Cookies on a bare IP address are refused by aiohttp's default jar; a browser keeps them.
        jar = aiohttp.CookieJar(unsafe=True)
        if self.cookies:
            jar.update_cookies(self.cookies, URL(self.url))
        self.http = aiohttp.ClientSession(cookie_jar=jar)
        self.sio = socketio.AsyncClient(
            http_session=self.http, reconnection_delay=0.2, reconnection_delay_max=1.0
        )
        self.sio.on("batch", self._batch)
        self.sio.on("state", self._state)
        self.sio.on("connect", self._connected)
        self.sio.on("disconnect", self._disconnected)
        await self.sio.connect(
            self.url, transports=self.transports, wait_timeout=timeout, retry=True
        )
        return self

    async def _batch(self, batch: dict) -> None:
        arrived = self.clock()
        self.count += 1
        if self.order:
            self.batches.append(json.dumps(batch, sort_keys=True))
        newest = newest_event_time(batch)
        if newest is not None:
            self.delays.append(arrived - newest)

    async def _state(self, state: dict) -> None:
        self.states.append(state)

    async def _connected(self) -> None:
        self.connects += 1

    async def _disconnected(self, *_: Any) -> None:
        self.disconnects += 1

    @property
    def process(self) -> str | None:
        """The web process the balancer pinned this viewer to (its sticky cookie), if any."""
        for cookie in self.http.cookie_jar if self.http is not None else ():
            if cookie.key == STICKY_COOKIE:
                return cookie.value
        return None

    @property
    def transport(self) -> str | None:
        return self.sio.transport() if self.sio is not None and self.sio.connected else None

    async def command(self, timeout: float = 30.0, **data: Any) -> dict:
        return await self.sio.call("command", data, timeout=timeout)

    async def close(self) -> None:
        if self.sio is not None:
            await self.sio.disconnect()
        if self.http is not None:
            await self.http.close()


async def wait_until(condition: Callable[[], object], timeout: float, poll: float = 0.05) -> Any:
    """Poll `condition` until it is truthy (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result or None
        await asyncio.sleep(poll)
